"""QEMU's own memory dump (adapter): no kexec, no crashkernel.

A panic reaches QEMU through the pvpanic device (``-action panic=pause``
stops the guest there), QMP reports ``GUEST_PANICKED``, and
``dump-guest-memory`` writes all of RAM as an ELF core. The ``vmcoreinfo``
device, filled by the guest's qemu_fw_cfg driver, puts VMCOREINFO in the
core: without it drgn cannot find the KASLR offset. ELF, not QEMU 7.2's
kdump-zlib, which drgn cannot read (LAB-NOTES).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kdebug.capture import diagnose as cdiag
from kdebug.capture.outfaults import remove_quietly
from kdebug.capture.plan import CaptureOptions, StageClock
from kdebug.capture.record import Capture
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
from kdebug.errors import CaptureError, GuestError, KdebugError
from kdebug.guest.qemu import Guest
from kdebug.guest.qmp import Qmp
from kdebug.kernel import Kernel
from kdebug.output import check_writable, output_error, stalled_fault
from kdebug.plan.prepare import LaunchOptions
from kdebug.session import Session, new_session

DUMP_TIMEOUT = 300.0


def dump_memory(qmp_socket: Path, path: Path, timeout: float = DUMP_TIMEOUT, *, ram: int | None = None) -> None:
    """Write the (stopped) guest's RAM to ``path`` as ELF, created 0600 first.
    ``ram``: the guest's RAM in bytes, which the ELF needs on disk: refused
    at once where it does not fit; a write fault during the dump is said
    as one (kdebug.output)."""
    if ram is not None:
        check_writable(path.parent, what="the dump", need=ram)
    create_private(path)
    try:
        with Qmp(qmp_socket, timeout=timeout) as q:
            q.cmd("dump-guest-memory", paging=False, protocol=f"file:{path}", format="elf")
    except GuestError:
        if (code := stalled_fault(path.parent, path, None)) is not None:
            remove_quietly(path)  # a cut ELF, and the space it took
            raise output_error(code, path.parent, what="the dump", need=ram) from None
        raise


def guest_panicked(q: Qmp) -> Callable[[], bool]:
    """Whether QMP has reported GUEST_PANICKED (pulls the events that came)."""
    seen = False

    def check() -> bool:
        nonlocal seen
        while not seen and (ev := q.pull_event(wait=False)):
            seen = ev.get("event") == "GUEST_PANICKED"
        return seen

    return check


def run_qemu(base: LaunchOptions, opts: CaptureOptions, trigger: Trigger, kernel: Kernel,
             cap: Capture, clock: StageClock) -> None:
    out = cap.directory
    partial = out / PARTIAL
    with clock.stage("preflight"):
        lopts = launch_options(base, kernel, trigger, pvpanic=True, crashkernel=None)
        record_modules(cap, lopts)
    session = new_session()
    guest: Guest | None = None
    offset = None
    try:
        guest = boot_recorded(lopts, session, kernel, cap, clock, opts.timeouts.boot)
        if opts.setup:
            with clock.stage("setup"):
                run_setup(guest, opts.setup)
        with clock.stage("arm"):
            cap.panic_on = arm(guest, trigger, opts.panic_on)
        # Connected before the trigger: QMP events go only to connected clients.
        with clock.stage("panic"), Qmp(session.qmp_socket, timeout=10) as q:
            offset = fire(guest, trigger, q)
            w = watch(guest, offset, opts.timeouts.panic or trigger.seconds, panicked=guest_panicked(q),
                      armed=cap.panic_on["words"])
            if not w.crashed:
                err = note_no_crash(cap, w, guest, offset, opts, kernel)
                if err is not None:
                    raise err
                diags = cdiag.after_trigger(guest.transcript[offset:], exited=w.exited,
                                            timed_out=w.timed_out, kdump=False)
                d = diags[0] if diags else None
                raise CaptureError(d.cause if d else "no GUEST_PANICKED from QEMU",
                                   hint=d.fix if d else None, diagnoses=diags)
        with clock.stage("dump") as st:
            dump_memory(session.qmp_socket, partial, ram=cap.guest["memory_mb"] << 20)
            cap.sizes["transferred"] = partial.stat().st_size
            st.detail = "QMP dump-guest-memory, ELF"
        with clock.stage("stop"):
            guest.close()
        with clock.stage("verify"):
            verify(cap, partial, kernel, on_vmcore=opts.on_vmcore)
        cap.seconds = clock.elapsed()
    finally:
        if guest is not None:
            guest.close()
            save_log(cap, "main", "console-main.log", guest.transcript.replace("\r\n", "\n"))
        else:
            keep_boot_log(cap, session)
        session.remove()


def snapshot_session(session: Session, cap: Capture, clock: StageClock, kernel: Kernel, *,
                     resume: bool = True) -> None:
    """Stop a running guest, dump it, and let it go on (unless ``resume`` is false)."""
    partial = cap.directory / PARTIAL
    with clock.stage("stop-guest"), Qmp(session.qmp_socket, timeout=10) as q:
        q.cmd("stop")
    try:
        with clock.stage("dump") as st:
            dump_memory(session.qmp_socket, partial)
            cap.sizes["transferred"] = partial.stat().st_size
            st.detail = "QMP stop + dump-guest-memory, ELF"
    finally:
        if resume:
            try:
                with Qmp(session.qmp_socket, timeout=10) as q:
                    q.cmd("cont")
            except KdebugError:
                pass  # the dump's outcome matters more; the guest stays stopped
    with clock.stage("verify"):
        verify(cap, partial, kernel, expect_panic=False)
    cap.seconds = clock.elapsed()


def snapshot_fresh(base: LaunchOptions, cap: Capture, clock: StageClock, kernel: Kernel,
                   run: str | None, boot_timeout: float) -> None:
    """Boot a guest, optionally run a command, then snapshot it and stop it."""
    session = new_session()
    guest: Guest | None = None
    try:
        guest = boot_recorded(base, session, kernel, cap, clock, boot_timeout)
        if run:
            with clock.stage("run") as st:
                r = guest.run(run, timeout=120)
                st.detail = f"status {r.status}"
        snapshot_session(session, cap, clock, kernel, resume=False)
    finally:
        if guest is not None:
            guest.close()
            save_log(cap, "main", "console-main.log", guest.transcript.replace("\r\n", "\n"))
        session.remove()
