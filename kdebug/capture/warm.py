"""Captures that start armed (kdebug.warm): the guest is saved after
crashkernel= is reserved and ``kexec -p`` has loaded the capture kernel, so
a warm capture is restore -> arm -> trigger -> capture kernel -> dump.

The state's stage names the capture kernel's command line (dump level,
compression, format), so a capture that would load it differently never
restores it. ``--add`` files and ``--setup`` commands are the run's own:
they come after the restore (and, in the run that saves, after the load).
"""

from __future__ import annotations

from collections.abc import Callable

from kdebug.capture.plan import CaptureOptions, StageClock, capture_cmdline
from kdebug.capture.record import Capture
from kdebug.capture.steps import prepare_recorded
from kdebug.guest.qemu import Guest, boot
from kdebug.kernel import Kernel
from kdebug.plan.prepare import LaunchOptions
from kdebug.session import Session
from kdebug.warm.start import WarmStart, add_files, late_files, warm_off


def may_start_warm(opts: CaptureOptions, unsafe: str | None) -> bool:
    """Warm starts serve the default route: the dump over virtio-serial, a
    capture kernel loaded, a crashkernel= the CLI checked."""
    return opts.warm and not warm_off() and opts.via == "serial" and not opts.skip_kexec and not unsafe


def start_armed(lopts: LaunchOptions, session: Session, kernel: Kernel, cap: Capture, clock: StageClock,
                opts: CaptureOptions, level: int | None, *, warm_ok: bool, user_files: set[str],
                reserve: Callable[[Guest], None], load: Callable[[Guest], str]) -> Guest:
    """A guest with its capture kernel loaded: restored, or booted, checked,
    loaded and saved. ``reserve`` and ``load`` are the kdump steps;
    ``user_files``: the guest paths of the user's --add files (copied in
    after the restore; kdebug's own hook and trigger module are in the state)."""
    late, why = late_files(lopts, not warm_ok, only=user_files)
    plan = prepare_recorded(lopts, session, kernel, cap, clock)
    append = capture_cmdline(plan.cmdline, raw=opts.raw, dump_level=level, compression=opts.compression)
    warm = WarmStart(plan, stage=f"armed {append}", release=kernel.release, vmlinux=kernel.vmlinux,
                     enabled=warm_ok and why is None, reseed=opts.reseed)
    if why:
        warm.notes.append(why)
    guest = None
    if warm.find() is not None:
        with clock.stage("restore") as st:
            guest = warm.restore(session, opts.timeouts.boot)
            st.detail = warm.line
    if guest is None:
        with clock.stage("boot"):
            guest = boot(plan, session, timeout=opts.timeouts.boot)
        try:
            with clock.stage("reserve"):
                reserve(guest)
            with clock.stage("load") as st:
                st.detail = load(guest)
            if warm.enabled:
                with clock.stage("save") as st:
                    guest.run("true", timeout=30)  # the shell idle, as a restore finds it
                    warm.save(guest)
                    st.detail = warm.line
        except BaseException:
            guest.close()
            raise
    try:
        if late:
            with clock.stage("add-files") as st:
                st.detail = f"{len(late)} file(s) over the console in {add_files(guest, late):.2f} s"
    except BaseException:
        guest.close()
        raise
    cap.start = warm.line
    if warm.record is not None:
        cap.warm = {"state": warm.record.key, "saved": warm.record.saved, "kaslr_offset": warm.record.kaslr_offset,
                    "reseed": opts.reseed and warm.kind == "warm", "notes": list(warm.notes)}
    elif warm.notes:
        cap.warm = {"notes": list(warm.notes)}
    return guest
