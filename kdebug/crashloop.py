"""crash-loop: boot, crash, capture and report in one run, over the capture
and the post-mortem. crash is the long pole of the full report, so it starts
on the vmcore the moment the dump is whole (while the capture still checks
it with drgn and the report loads drgn), on a vmlinux copy indexed while the
guest runs; the report adopts that crash (or ends it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kdebug.capture.api import capture
from kdebug.capture.plan import CaptureOptions
from kdebug.capture.record import Capture
from kdebug.crash.index import index_ahead
from kdebug.crash.runner import CrashProcess, have_crash
from kdebug.errors import CaptureError
from kdebug.kernel import find_kernel
from kdebug.output import write_file
from kdebug.plan.prepare import LaunchOptions
from kdebug.postmortem.build import postmortem
from kdebug.report.model import Report
from kdebug.report.render import render

#: Saved in the capture directory beside the dump they describe.
SAVED_FORMATS = ("json", "html")


@dataclass
class Loop:
    capture: Capture
    report: Report


class CrashAhead:
    """crash started on the vmcore the moment it is whole (the capture's
    ``on_vmcore``); ``proc`` is handed to the report, which adopts it."""

    def __init__(self, say: Callable[[str], None], indexing: threading.Thread | None = None) -> None:
        self.proc: CrashProcess | None = None
        self.say = say
        self.indexing = indexing  # the vmlinux copy crash reads fastest, being made

    def start(self, vmcore: Path, vmlinux: Path | None) -> None:
        self.cancel()  # --method auto: the kdump dump made way for a QEMU one
        if self.indexing is not None and self.indexing.is_alive():
            # Measured: the copy takes ~6 s once; crash on it starts 3-5 s sooner, every run.
            self.say("crash: waiting for the indexed vmlinux copy")
            self.indexing.join(60)
        if vmlinux is not None and have_crash():
            self.proc = CrashProcess(vmlinux, vmcore, "report")
            self.say("crash: started on the dump")

    def cancel(self) -> None:
        if self.proc is not None:
            self.proc.cancel()
            self.proc = None
        self.finish()

    def finish(self) -> None:
        """Let the copy be made (or its temporary file removed) before the run ends."""
        if self.indexing is not None:
            self.indexing.join(120)


def crash_ahead(lopts: LaunchOptions, opts: CaptureOptions, crash: bool, say: Callable[[str], None]) -> CrashAhead:
    """Index the vmlinux copy now, and start crash from the capture's ``on_vmcore``."""
    if not crash:
        return CrashAhead(say)
    kernel = find_kernel(lopts.kernel, lopts.vmlinux, lopts.tree, lopts.release)
    indexing = index_ahead(kernel.vmlinux) if kernel.vmlinux is not None else None
    if indexing is not None:
        say(f"crash: indexing a copy of {kernel.vmlinux} for crash while the guest runs (once: "
            "cached by build-id)")
    ahead = CrashAhead(say, indexing)
    opts.on_vmcore = ahead.start
    return ahead


def crash_loop(lopts: LaunchOptions, opts: CaptureOptions, *, crash: bool = True,
               say: Callable[[str], None] = lambda _msg: None,
               on_partial: Callable[[Report], None] | None = None) -> Loop:
    """Capture, then report on the capture (``on_partial``: the drgn report,
    while crash still runs). No crash process outlives the call."""
    what = f"run {opts.run!r}" if opts.run is not None else f"trigger {opts.trigger}"
    say(f"capture: boot, {what}, {opts.method} dump")
    ahead = crash_ahead(lopts, opts, crash, say)
    cap = _capture(lopts, opts, ahead, say)
    try:
        report = postmortem(cap.directory, crash=crash, progress=say, on_partial=on_partial,
                            crash_started=ahead.proc)
    except BaseException:
        ahead.cancel()
        raise
    if crash:
        say("full report ready (drgn + crash)")
    save_reports(cap.directory, report)
    ahead.finish()
    return Loop(cap, report)


def _capture(lopts: LaunchOptions, opts: CaptureOptions, ahead: CrashAhead, say: Callable[[str], None]) -> Capture:
    """The capture, told stage by stage; a failure names its stage and where its logs are."""
    try:
        cap = capture(lopts, opts, say=say)
    except CaptureError as e:
        ahead.cancel()
        where = f"; logs in {e.directory}" if e.directory else ""
        raise CaptureError(f"stage {e.failed_stage}: {e.message}{where}", hint=e.hint) from None
    except BaseException:
        ahead.cancel()
        raise
    if cap.fallback:
        say(f"capture: {cap.fallback}; " + ("took a QEMU dump of the guest as it is" if cap.splat
                                            else "used the QEMU dump instead"))
    say("capture: " + ", ".join(f"{s.name} {s.seconds:.1f}s" for s in cap.stages) + f" -> {cap.directory}")
    if cap.capture_kernel:
        ck = cap.capture_kernel
        say(f"capture kernel: {ck['release']} ({ck['reason']})")
    return cap


def save_reports(directory: Path, report: Report) -> None:
    """The report beside the dump it describes, 0600 like the dump: the log
    and tasks in it come from guest memory."""
    for f in SAVED_FORMATS:
        # Whole or not at all; a full or read-only disk is one line (exit 74).
        write_file(directory / f"report.{f}", render(report, f), mode=0o600, what=f"report.{f}")
