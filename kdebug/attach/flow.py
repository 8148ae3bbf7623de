"""The attach flows: a new guest (gdbstub), a `kdebug boot` session, or the
kernel's own KGDB. Each boots or finds the guest, works out the KASLR
offset, runs gdb and stops what it started."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from kdebug.attach.early import EarlyGdb
from kdebug.attach.plan import AttachOptions, KernelFiles, gdb_argv, kgdb_serial_args, plan_for
from kdebug.attach.ram import hold_ram_file, ram_file_path, share_ram
from kdebug.attach.runner import check_gdb, run_gdb
from kdebug.decode.elfsyms import read_vmlinux
from kdebug.errors import DebuggerError, KdebugError
from kdebug.guest.introspect import kaslr_offset_from_qmp, read_vmcoreinfo
from kdebug.guest.memory import open_guest_memory
from kdebug.guest.qemu import boot
from kdebug.guest.qmp import Qmp
from kdebug.plan.ports import free_port
from kdebug.plan.prepare import prepare
from kdebug.session import find_session, new_session
from kdebug.warm.start import WarmStart, add_files, late_files


def attach_session(name: str | None, a: AttachOptions, echo=print) -> int:
    """gdb on a guest started by `kdebug boot`; the guest keeps running after."""
    s = find_session(name)
    if not s.gdb_port:
        raise DebuggerError(f"session {s.name} has no gdbstub (started with --gdb-port 0)")
    vmlinux = Path(s.kernel["vmlinux"])
    with Qmp(s.qmp_socket) as q:
        q.cmd("stop")
        try:
            offset = kaslr_offset_from_qmp(q, vmlinux)
        except DebuggerError:
            q.cmd("cont")
            raise
        fast = _session_memory(q, s.qemu_pid, vmlinux, offset, echo)
    echo(f"kdebug: session {s.name}, gdb 127.0.0.1:{s.gdb_port}, KASLR offset {offset:#x}")
    plan = plan_for(KernelFiles.from_dict(s.kernel), s.gdb_port, offset, a, detach_on_quit=True, **fast)
    try:
        rc = run_gdb(gdb_argv(plan), timeout=a.gdb_timeout).returncode
    finally:
        if s.alive():
            with Qmp(s.qmp_socket) as q:
                q.cmd("cont")
    return rc


def _session_memory(qmp, qemu_pid: int, vmlinux: Path, offset: int, echo) -> dict:
    """The fast read path for a guest this process did not start: its RAM
    read from QEMU's /proc/PID/mem (plan fields), or {} with a note."""
    try:
        with tempfile.TemporaryDirectory(prefix="kdebug-attach-") as tmp:
            vmcoreinfo, gpa = read_vmcoreinfo(qmp, vmlinux, offset, Path(tmp) / "vmcoreinfo")
            mem = open_guest_memory(qmp, qemu_pid, (gpa, vmcoreinfo))
    except KdebugError as e:
        echo(f"kdebug: reading memory through the gdbstub ({e})")
        return {}
    mem.close()
    linear = max((r.phys + r.size for r in mem.ranges if r.offset == r.phys), default=0)
    return {"ram_file": Path(f"/proc/{qemu_pid}/mem"), "ram_base": mem.host_base, "ram_size": linear}


def attach_kgdb(launch, a: AttachOptions, echo=print) -> int:
    """gdb over KGDB (kgdboc=ttyS1), the way one debugs real hardware: no
    gdbstub and no QEMU help; the KASLR offset comes from the guest's own
    /proc/kallsyms, read over its console before it stops."""
    check_gdb()
    if launch.freeze:
        raise DebuggerError("--kgdb cannot --freeze: KGDB starts with the kernel", hint="use the gdbstub")
    launch.gdb_port = 0
    launch.append = [*launch.append, "kgdboc=ttyS1,115200"]
    session = new_session()
    try:
        prep = prepare(launch, session)
        cfg = prep.kernel.config
        if cfg is not None and cfg.values and not cfg.builtin("KGDB_SERIAL_CONSOLE"):
            raise DebuggerError(f"kernel {prep.kernel.release} has no KGDB_SERIAL_CONSOLE",
                                hint="build one with `kdebug kernel build` (launch/kconfig/debug.config)")
        port = free_port()
        plan = dataclasses.replace(prep.plan, extra_args=tuple(prep.plan.extra_args) + kgdb_serial_args(port))
        k = KernelFiles.from_kernel(prep.kernel)
        echo(f"kdebug: kernel {prep.kernel.release}, accel {prep.accel.name}, KGDB on ttyS1 = 127.0.0.1:{port}")
        with boot(plan, session, timeout=a.boot_timeout) as guest:
            line = guest.run("grep -w _stext /proc/kallsyms").output.split()
            if not line or int(line[0], 16) == 0:
                raise DebuggerError("the guest hides /proc/kallsyms addresses", hint="use --nokaslr")
            _, syms = read_vmlinux(k.vmlinux, ["_stext"])
            offset = int(line[0], 16) - syms["_stext"]
            echo(f"kdebug: KASLR offset {offset:#x} (from the guest's /proc/kallsyms); entering KGDB (sysrq g)")
            # KGDB says "Waiting for remote debugger" at KERN_CRIT, under the
            # console loglevel a driven guest runs with (kdebug.loglevel=1).
            guest.send("dmesg -n 3; echo g > /proc/sysrq-trigger")
            guest.wait_for(r"KGDB: Waiting for remote debugger|Entering kdb", timeout=30)
            gplan = plan_for(k, port, offset, a)
            with guest.draining():
                rc = run_gdb(gdb_argv(gplan), timeout=a.gdb_timeout).returncode
        return rc
    finally:
        session.remove()


def attach_new(launch, a: AttachOptions, echo=print) -> int:
    """Boot a guest (``launch`` is a LaunchOptions), stop it at its shell (or
    at the first instruction with freeze), run gdb, stop the guest afterwards."""
    check_gdb()
    if launch.freeze and not launch.nokaslr:
        # Before the kernel decompresses itself there is no offset to read.
        launch.nokaslr = True
        echo("kdebug: --freeze boots with nokaslr (the KASLR offset is chosen after the first instruction)")
    if launch.gdb_port == 0:
        launch.gdb_port = None
    session = new_session()
    ram = ram_file_path(session)
    late, why = late_files(launch, a.cold or launch.freeze)
    try:
        prep = prepare(launch, session)
        k = KernelFiles.from_kernel(prep.kernel)
        echo(f"kdebug: kernel {prep.kernel.release}, accel {prep.accel.name}, "
             f"gdb 127.0.0.1:{prep.plan.gdb_port}")
        plan = share_ram(prep.plan, ram)
        warm = WarmStart(plan, release=prep.kernel.release, vmlinux=k.vmlinux,
                         enabled=not a.cold and why is None, reseed=a.reseed)
        if why:
            warm.notes.append(why)
        if warm.find() is not None:
            rc = _attach_warm(warm, session, k, prep.plan.gdb_port, ram, late, a, echo)
            if rc is not None:
                return rc
        for n in warm.notes:
            echo(f"kdebug: {n}")
        with boot(plan, session, ready=None, timeout=a.boot_timeout) as guest:
            gplan = plan_for(k, prep.plan.gdb_port, None, a, ram_file=hold_ram_file(ram, guest.pid))
            if launch.freeze:
                return _gdb_on(guest, dataclasses.replace(gplan, kaslr_offset=0), a)
            early = EarlyGdb(session.qmp_socket, gplan)
            if os.environ.get("KDEBUG_EARLY_GDB", "1") != "0":  # 0: gdb only after the boot (bench/capture.py)
                early.start()
            try:
                guest.wait_ready(a.boot_timeout)
                if early.ready():
                    # gdb connects at once: let the shell get to its read first,
                    # so the guest stops the way it always does (init and sh asleep).
                    _save(warm, guest, late, a, echo)
                    echo(f"kdebug: guest at its shell in {guest.boot_seconds:.1f} s; KASLR offset "
                         f"{early.offset:#x} (read while it booted: gdb has the symbols already)")
                    with guest.draining():
                        return early.go(timeout=a.gdb_timeout)
                early.close()
                _save(warm, guest, late, a, echo)
                echo(f"kdebug: guest at its shell in {guest.boot_seconds:.1f} s; stopping it")
                with Qmp(session.qmp_socket) as q:
                    q.cmd("stop")
                    offset = kaslr_offset_from_qmp(q, k.vmlinux)
                echo(f"kdebug: KASLR offset {offset:#x}")
                return _gdb_on(guest, dataclasses.replace(gplan, kaslr_offset=offset), a)
            finally:
                early.close()
    finally:
        ram.unlink(missing_ok=True)
        session.remove()


def _save(warm: WarmStart, guest, late: dict, a: AttachOptions, echo) -> None:
    """A cold boot at its shell: saved for the next attach (the shell set up
    as a restore finds it), then the run's --add files."""
    if warm.enabled:
        guest.run("true", timeout=a.boot_timeout)
        warm.save(guest)
        for n in warm.notes:
            echo(f"kdebug: {n}")
        if warm.saved:
            echo(f"kdebug: {warm.line}")
    else:
        guest.wait_shell(a.boot_timeout)
    if late:
        add_files(guest, late)


def _attach_warm(warm: WarmStart, session, k: KernelFiles, port: int, ram: Path, late: dict,
                 a: AttachOptions, echo) -> int | None:
    """gdb on a guest restored from its saved state: gdb loads the symbols at
    the state's KASLR offset while QEMU restores; the IDT must agree before
    gdb connects. None: the restore failed (said), boot cold instead."""
    rec = warm.find().record
    # gdb starts before QEMU: the RAM file (made by share_ram) is held open
    # here already; hold_ram_file unlinks it once QEMU has mapped it.
    fd = os.open(ram, os.O_RDONLY)
    gplan = plan_for(k, port, None, a, ram_file=Path(f"/proc/{os.getpid()}/fd/{fd}"))
    early = EarlyGdb(session.qmp_socket, gplan)
    if rec.kaslr_offset is not None:
        early.start_at(rec.kaslr_offset)
    try:
        guest = warm.restore(session, a.boot_timeout)
        if guest is None:
            return None
        with guest:
            hold_ram_file(ram, guest.pid)
            if late:
                add_files(guest, late)
            with Qmp(session.qmp_socket) as q:
                q.cmd("stop")
                offset = kaslr_offset_from_qmp(q, k.vmlinux)
            echo(f"kdebug: guest restored in {guest.boot_seconds:.1f} s ({warm.line}); KASLR offset {offset:#x}")
            if early.ready() and early.offset == offset:
                with guest.draining():
                    return early.go(timeout=a.gdb_timeout)
            if rec.kaslr_offset is not None and rec.kaslr_offset != offset:
                echo(f"kdebug: the saved state says KASLR offset {rec.kaslr_offset:#x}, the IDT {offset:#x}: "
                     "gdb uses the IDT's")
            early.close()
            return _gdb_on(guest, dataclasses.replace(gplan, kaslr_offset=offset), a)
    finally:
        early.close()


def _gdb_on(guest, gplan, a: AttachOptions) -> int:
    """gdb in the foreground on a guest this process started, its console drained."""
    with guest.draining():
        return run_gdb(gdb_argv(gplan), timeout=a.gdb_timeout).returncode
