"""The kdump loop (adapter): boot with crashkernel=, kexec -p a capture
kernel, crash, and let the capture kernel stream /proc/vmcore home.

The dump leaves the guest through a virtio-serial port backed by a host
file (measured here at ~50 MB/s, ten times an 8250 port). The capture
kernel's init runs kdebug's hook (launch/triggers/capture-hook.sh) as soon as
it starts, with its settings on the capture command line: no console round
trips with a kernel that has just come up, and no shell prompt to parse
through interleaved printk. The host checks every byte arrived (the
flattened stream's end marker, or the ELF's size) before it stops QEMU.

``--via disk`` is the route users took by hand: the capture kernel mounts an
ext4 disk image kdebug made, writes the vmcore file there and unmounts it;
after QEMU stops, debugfs copies the file out without mounting the image.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kdebug.capture import diagnose as cdiag
from kdebug.capture.capture_kernel import choose_capture_kernel
from kdebug.capture.outfaults import GrowthWatch, allocated, dump_fault, remove_quietly
from kdebug.capture.plan import (
    CaptureOptions,
    StageClock,
    capture_cmdline,
    choose_dump_level,
    disk_name,
    preflight,
    unsafe_crashkernel,
)
from kdebug.capture.qemudump import dump_memory
from kdebug.capture.record import Capture, Stage
from kdebug.capture.steps import (
    arm,
    boot_recorded,
    create_private,
    fire,
    keep_boot_log,
    launch_options,
    note_no_crash,
    record_modules,
    run_setup,
    save_log,
    watch,
)
from kdebug.capture.triggers import Trigger
from kdebug.capture.verify import PARTIAL, verify
from kdebug.capture.warm import may_start_warm, start_armed
from kdebug.errors import CaptureError
from kdebug.guest.qemu import EOF, TIMEOUT, Guest
from kdebug.guest.qmp import Qmp
from kdebug.initramfs.build import which
from kdebug.kernel import Kernel
from kdebug.model import PANIC_PREFIX
from kdebug.output import stalled_fault
from kdebug.plan.cmdline import CRASHKERNEL_DEFAULT
from kdebug.plan.prepare import LaunchOptions
from kdebug.session import new_session
from kdebug.vmcore.info import read_dump

PANIC_OR_CAPTURE = re.compile(re.escape(PANIC_PREFIX) + r"|Linux version \S+")
START = re.compile(r"kdebug-capture: start size=(\d+) ")
HOOK_ERROR = re.compile(r"kdebug-capture: error (.*)")
DONE = re.compile(r"kdebug-capture: done status=(\d+)\s")
READY_CAPTURE = re.compile(r"kdebug-init: ready role=(capture|main)")
STREAM = ".vmcore.stream"
DISK = ".vmcore.disk"
#: Sparse: the image costs only what mke2fs and the dump write (4 MB empty).
DISK_SIZE = 16 << 30
#: The file the capture hook writes on the dump disk (capture-hook.sh).
DISK_FILE = "vmcore"
#: Printed with /sys/kernel/kexec_crash_loaded after kexec -p returns.
LOADED = "kdebug-kexec-crash-loaded="

@dataclass
class _Route:
    """Where the dump goes: the stream file, or the ext4 disk and its name in the guest."""

    stream: Path
    disk: Path | None = None
    disk_dev: str | None = None
    level: int | None = None  # makedumpfile's -d in the capture kernel


def run_kdump(base: LaunchOptions, opts: CaptureOptions, trigger: Trigger, kernel: Kernel,
              cap: Capture, clock: StageClock) -> None:
    out = cap.directory
    route = _Route(out / (PARTIAL if opts.raw else STREAM), out / DISK if opts.via == "disk" else None)
    with clock.stage("preflight") as st:
        lopts = _preflight(base, opts, trigger, kernel, cap, route, st)
    stream, disk = route.stream, route.disk
    session = new_session()
    guest: Guest | None = None
    try:
        if may_start_warm(opts, unsafe_crashkernel()):
            # Restored armed, or booted, loaded and saved so (kdebug/capture/warm.py);
            # --setup is the run's own: after the load.
            guest = start_armed(lopts, session, kernel, cap, clock, opts, route.level, warm_ok=True,
                                user_files=set(base.extra_files),
                                reserve=lambda g: _check_reserved(g, cap.guest["crashkernel"]),
                                load=lambda g: _load_capture_kernel(g, g.plan.cmdline, opts, None, route.level))
            if opts.setup:
                with clock.stage("setup"):
                    run_setup(guest, opts.setup)
        else:
            guest = _boot_and_load(lopts, session, kernel, cap, clock, opts, route)
        with clock.stage("arm"):
            cap.panic_on = arm(guest, trigger, opts.panic_on)
        if not _crash_and_dump(guest, trigger, opts, cap, clock, stream, disk, kernel):
            # --method auto, and the kernel went on after a splat: dump it as it is.
            _dump_live(guest, cap, clock, kernel, stream)
            return
        with clock.stage("stop"):
            guest.close()
        if disk is not None:
            with clock.stage("read-disk") as st:
                st.detail = read_dump_disk(disk, out / PARTIAL)
        _finish(cap, clock, None if disk is not None else stream, opts, kernel)
    finally:
        if disk is not None:
            disk.unlink(missing_ok=True)
        if guest is not None:
            guest.close()
            _save_logs(cap, guest)
        else:
            keep_boot_log(cap, session)
        session.remove()


def _boot_and_load(lopts: LaunchOptions, session, kernel: Kernel, cap: Capture, clock: StageClock,
                   opts: CaptureOptions, route: _Route) -> Guest:
    """The cold start: boot, check crashkernel=, --setup, kexec -p (a --setup
    may set what the load meets, e.g. kexec_load_disabled)."""
    guest = boot_recorded(lopts, session, kernel, cap, clock, opts.timeouts.boot)
    try:
        with clock.stage("reserve"):
            _check_reserved(guest, cap.guest["crashkernel"])
        if opts.setup:
            with clock.stage("setup"):
                run_setup(guest, opts.setup)
        if not opts.skip_kexec:
            with clock.stage("load") as st:
                st.detail = _load_capture_kernel(guest, guest.plan.cmdline, opts, route.disk_dev, route.level)
    except BaseException:
        guest.close()
        raise
    return guest


def _preflight(base: LaunchOptions, opts: CaptureOptions, trigger: Trigger, kernel: Kernel, cap: Capture,
               route: _Route, st: Stage) -> LaunchOptions:
    """Check the host's tools, choose the dump level and the capture kernel,
    make the stream file or the dump disk; the guest's launch options."""
    preflight(kernel)
    if not opts.raw:
        choice = choose_dump_level(opts.dump_level, kernel, which("makedumpfile"))
        route.level = cap.dump_level = choice.level
        cap.dump_filter = choice.to_dict()
        st.detail = choice.reason
    if route.disk is not None:
        make_dump_disk(route.disk, kernel)
        route.disk_dev = disk_name((1 if base.rootfs else 0) + len(base.drives))
    else:
        create_private(route.stream)
    crash = base.crashkernel if base.crashkernel not in (None, "auto") else CRASHKERNEL_DEFAULT
    lopts = launch_options(base, kernel, trigger, stream=None if route.disk else route.stream, disk=route.disk,
                           crashkernel=crash, unsafe_crashkernel=unsafe_crashkernel())
    ck = choose_capture_kernel(kernel, opts.capture_kernel, opts.via)
    cap.capture_kernel = ck.to_dict()
    if ck.separate:
        lopts = dataclasses.replace(lopts, capture_image=ck.image)
    record_modules(cap, lopts)
    return lopts


def _check_reserved(guest: Guest, crashkernel: str | None) -> None:
    r = guest.run("grep 'Crash kernel' /proc/iomem", timeout=20)
    if r.status == 0 and r.output.strip():
        return
    dmesg = guest.run("dmesg | grep -i crashkernel", timeout=20).output
    d = cdiag.not_reserved(dmesg, crashkernel)
    raise CaptureError(d.cause, hint=d.fix, diagnoses=[d])


def _load_capture_kernel(guest: Guest, cmdline: str, opts: CaptureOptions, disk_dev: str | None,
                         level: int | None) -> str:
    append = capture_cmdline(cmdline, raw=opts.raw, dump_level=level,
                             compression=opts.compression, disk=disk_dev)
    base = f"-p /kdump/vmlinuz --initrd=/kdump/initrd.img --append='{append}'"
    tried = []
    # kexec_file_load first: the kernel verifies the image itself, which lockdown
    # requires, and it is faster here (2.1 s against 3.2 s for kexec_load under TCG).
    for flag, name in (("-s ", "kexec_file_load"), ("", "kexec_load")):
        # One round trip each: the shell says 127 when there is no kexec, and
        # the kernel's own word on what is loaded follows a zero exit.
        r = guest.run(f"kexec {flag}{base} 2>&1 && echo {LOADED}$(cat /sys/kernel/kexec_crash_loaded)",
                      timeout=opts.timeouts.kexec)
        if r.status == 127 and not tried:
            d = cdiag.kexec_refused("", missing_binary=True)
            raise CaptureError(d.cause, hint=d.fix, diagnoses=[d])
        out = r.output.replace(f"{LOADED}1", "").replace(f"{LOADED}0", "").strip()
        tried.append(f"kexec {flag}-p: {out[-300:] or 'status ' + str(r.status)}")
        if r.status == 0 and f"{LOADED}1" in r.output:
            return f"{name}, capture cmdline: {append}"
    d = cdiag.kexec_refused("\n".join(tried))
    raise CaptureError(f"kexec -p did not load the capture kernel: {d.cause}", hint=d.fix, diagnoses=[d])


def _crash_and_dump(guest: Guest, trigger: Trigger, opts: CaptureOptions, cap: Capture,
                    clock: StageClock, stream: Path, disk: Path | None, kernel: Kernel) -> bool:
    """False when the kernel did not crash and --method auto wants a QEMU dump instead."""
    panic_timeout = opts.timeouts.panic or trigger.seconds
    with clock.stage("panic") as st:
        offset = fire(guest, trigger)
        guest.trigger_offset = offset
        w = watch(guest, offset, panic_timeout, crash=PANIC_OR_CAPTURE, armed=cap.panic_on["words"])
        if not w.crashed:
            err = note_no_crash(cap, w, guest, offset, opts, kernel)
            if err is not None and w.splat is not None and opts.method == "auto":
                cap.fallback = err.message
                st.detail = f"{err.message}; a QEMU dump of the guest as it is follows"
                return False
            if err is not None:
                raise err
            _fail_after_trigger(guest, offset, trigger, exited=w.exited, timed_out=w.timed_out)
    with clock.stage("capture-boot"):
        i, m = guest.expect([START, HOOK_ERROR, READY_CAPTURE], opts.timeouts.capture_boot)
        if i == 1:
            what = m.group(1).strip()
            raise CaptureError(f"capture hook: {what}", hint=(
                "the capture kernel needs ext4 and virtio_blk for the dump disk; or use --via serial"
                if what.startswith("no-mount") else
                "the dump port is missing in the capture kernel (virtio_console?)"))
        if i != 0:
            _fail_after_trigger(guest, offset, trigger, exited=i == EOF, timed_out=i == TIMEOUT,
                                ready=i == 2)
        cap.sizes["guest_vmcore"] = int(m.group(1))
    with clock.stage("dump") as st:
        i, m = _await_done(guest, disk or stream, cap, opts.timeouts.dump)
        got = stream.stat().st_size if disk is None else 0
        if i != 0:
            d = cdiag.transfer_cut(got, "no 'done' from the capture kernel", qemu_exited=i == EOF)
            raise CaptureError(d.cause, hint=d.fix, diagnoses=[d])
        status = int(m.group(1))
        if status != 0:
            tail = guest.transcript[offset:].splitlines()[-8:]
            raise CaptureError(f"makedumpfile in the capture kernel failed (status {status})",
                               hint=" | ".join(x.strip() for x in tail if x.strip())[-300:])
        if disk is not None:
            st.detail = "written to the ext4 dump disk"
            return True
        _drain(guest, stream, cap.sizes["guest_vmcore"] if opts.raw else None, opts.timeouts.drain)
        cap.sizes["transferred"] = stream.stat().st_size
        st.detail = f"{cap.sizes['transferred']} bytes over virtio-serial"
    return True


def _await_done(guest: Guest, target: Path, cap: Capture, timeout: float) -> tuple[int | str, re.Match | None]:
    """Wait for the capture hook's ``done``, watching the file the dump goes
    to: an output fault (disk full, read-only, removed) stops QEMU at once,
    removes the cut dump and fails the stage in one line (outfaults.py)."""
    watch_out = GrowthWatch(target, cap.directory)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        i, m = guest.expect([DONE], max(0.0, min(0.5, left)))
        if i != TIMEOUT or left <= 0:
            return i, m
        if (code := watch_out.fault()) is not None:
            guest.close()
            written = max(watch_out.size, 0)
            cap.sizes["transferred"] = written
            raw = cap.dump_level is None and cap.compression is None
            raise dump_fault(code, cap.directory, written=written,
                             need=cap.sizes.get("guest_vmcore") if raw else None,
                             removed=remove_quietly(target))


def _dump_live(guest: Guest, cap: Capture, clock: StageClock, kernel: Kernel, stream: Path) -> None:
    """QMP stop + dump-guest-memory of a guest that complained and went on
    (the vmcoreinfo device is on every kdebug guest, so drgn can read it)."""
    partial = cap.directory / PARTIAL
    partial.unlink(missing_ok=True)
    stream.unlink(missing_ok=True)
    cap.method, cap.dump_level, cap.compression, cap.via, cap.dump_filter = "qemu", None, None, None, None
    with clock.stage("dump") as st:
        with Qmp(guest.session.qmp_socket, timeout=10) as q:
            q.cmd("stop")
        dump_memory(guest.session.qmp_socket, partial)
        cap.sizes["transferred"] = partial.stat().st_size
        st.detail = "QMP stop + dump-guest-memory, ELF (no panic to capture)"
    with clock.stage("stop"):
        guest.close()
    with clock.stage("verify"):
        verify(cap, partial, kernel, expect_panic=False)
    cap.seconds = clock.elapsed()


def _fail_after_trigger(guest: Guest, offset: int, trigger: Trigger, *, exited: bool, timed_out: bool,
                        ready: bool = False) -> None:
    if exited:  # let the last lines land in the transcript
        time.sleep(0.2)
    text = guest.transcript[offset:]
    diags = cdiag.after_trigger(text, exited=exited or ready, timed_out=timed_out, kdump=True,
                                expect_panic=trigger.panic)
    if diags:
        raise CaptureError(diags[0].cause, hint=diags[0].fix, diagnoses=diags)
    raise CaptureError("QEMU exited" if exited else "timed out", hint="see the console logs")


def make_dump_disk(disk: Path, kernel: Kernel) -> None:
    """An empty ext4 file system only we can read, for ``--via disk``."""
    cfg = kernel.config
    if cfg and cfg.values and not cfg.builtin("EXT4_FS"):
        # The capture kernel mounts it before any module could be loaded.
        raise CaptureError(f"kernel {kernel.release} has no built-in ext4 (CONFIG_EXT4_FS="
                           f"{cfg.get('EXT4_FS') or 'n'}) for --via disk", hint="use --via serial")
    create_private(disk)
    r = subprocess.run([str(which("mke2fs")), "-q", "-F", "-t", "ext4", "-L", "kdebug-dump", "-m", "0",
                        "-N", "64", "-E", "lazy_itable_init=1,lazy_journal_init=1", str(disk),
                        f"{DISK_SIZE >> 10}k"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise CaptureError(f"mke2fs failed on the dump disk: {r.stderr.strip()[-300:]}")


def read_dump_disk(disk: Path, target: Path) -> str:
    """Copy the capture hook's file off the ext4 image with debugfs: no mount,
    no root needed, and the image is never written."""
    debugfs = which("debugfs")
    # debugfs splits its -R command on spaces: name the target relative to its directory.
    # It runs in the target's directory, so the image is named by its absolute
    # path (--out DIR may be relative to kdebug's own).
    r = subprocess.run([str(debugfs), "-R", f"dump /{DISK_FILE} {target.name}", str(disk.absolute())],
                       capture_output=True, text=True, timeout=600, cwd=target.parent,
                       preexec_fn=lambda: os.umask(0o077))
    if r.returncode != 0 or not target.exists():
        why = " ".join(ln for ln in r.stderr.splitlines() if not ln.startswith("debugfs "))
        d = cdiag.dump_disk_empty(why.strip() or "debugfs failed")
        raise CaptureError(d.cause, hint=d.fix, diagnoses=[d])
    return f"{target.stat().st_size} bytes read back from the ext4 dump disk with debugfs"


def _drain(guest: Guest, stream: Path, expect_size: int | None, timeout: float) -> None:
    """Wait until QEMU has written every byte the guest sent."""
    deadline = time.monotonic() + timeout
    while True:
        size = stream.stat().st_size
        if expect_size is not None:
            if size >= expect_size:
                return
        elif read_dump(stream).complete:
            return
        if time.monotonic() > deadline or not guest.alive():
            chk = read_dump(stream)
            d = cdiag.transfer_cut(size, f"the dump {chk.problem}" if chk.problem
                                   else f"expected {expect_size} bytes",
                                   qemu_exited=not guest.alive())
            raise CaptureError(d.cause, hint=d.fix, diagnoses=[d])
        time.sleep(0.1)


def _finish(cap: Capture, clock: StageClock, stream: Path | None, opts: CaptureOptions,
            kernel: Kernel) -> None:
    """``stream``: a flattened stream still to convert (None: vmcore.partial is the dump)."""
    out = cap.directory
    partial = out / PARTIAL
    if stream is not None and not opts.raw:
        with clock.stage("convert") as st:
            mdf = which("makedumpfile")
            with open(stream, "rb") as src:
                r = subprocess.run([mdf, "-R", str(partial)], stdin=src, capture_output=True, text=True,
                                   timeout=300, preexec_fn=lambda: os.umask(0o077))
            if r.returncode != 0:
                if (code := stalled_fault(out, partial, None)) is not None:
                    # The stream stays (it is whole); the cut conversion goes.
                    raise dump_fault(code, out, written=allocated(partial), need=stream.stat().st_size,
                                     what="the converted dump", removed=remove_quietly(partial))
                raise CaptureError(f"makedumpfile -R failed: {r.stderr.strip()[-300:]}")
            stream.unlink()
            st.detail = "flattened stream -> kdump-compressed"
    with clock.stage("verify"):
        verify(cap, partial, kernel, on_vmcore=opts.on_vmcore)
    cap.seconds = clock.elapsed()


def _save_logs(cap: Capture, guest: Guest) -> None:
    text = guest.transcript
    offset = getattr(guest, "trigger_offset", None)
    main, capture = cdiag.split_logs(text, offset if offset is not None else len(text))
    main, capture = main.replace("\r\n", "\n"), capture.replace("\r\n", "\n")
    save_log(cap, "main", "console-main.log", main)
    if capture:
        save_log(cap, "capture", "console-capture.log", capture)
