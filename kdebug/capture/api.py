"""``capture()`` and ``snapshot()``: one call, one :class:`Capture`, always a
capture.json in the directory, QEMU stopped on every path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kdebug.capture.kdump import PARTIAL, STREAM, run_kdump
from kdebug.capture.module import TAINT
from kdebug.capture.outfaults import capture_error, claim_dir
from kdebug.capture.plan import CaptureOptions, StageClock, make_out_dir
from kdebug.capture.qemudump import run_qemu, snapshot_fresh, snapshot_session
from kdebug.capture.record import Capture, write_capture_json
from kdebug.capture.triggers import get_trigger
from kdebug.errors import CaptureError, OutputError
from kdebug.kernel import Kernel, find_kernel
from kdebug.output import is_fault, output_error
from kdebug.plan.prepare import LaunchOptions
from kdebug.session import find_session


def _new(out: Path, kernel: Kernel, **kw) -> Capture:
    return Capture(directory=out, kernel={"release": kernel.release, "build_id": kernel.build_id,
                                          "image": str(kernel.image),
                                          "vmlinux": str(kernel.vmlinux) if kernel.vmlinux else None},
                   **kw)


@contextmanager
def _finishing(cap: Capture) -> Iterator[None]:
    """Whatever ends a capture or snapshot, capture.json is written where it
    fits and nothing half-written is named vmcore; a CaptureError names the
    directory, and says so when capture.json could not be written. A write
    fault in any stage (disk full, read-only, removed) is one such error."""
    try:
        yield
    except CaptureError as e:
        _tidy_failed(cap)
        e.directory = cap.directory
        _record_failure(cap, e)
        raise
    except BaseException as exc:
        if (e := _output_fault(exc, cap)) is None:  # Ctrl-C, SIGTERM, a bug
            _tidy_failed(cap)
            cap.failed_stage = cap.failed_stage or "interrupted"
            try:
                write_capture_json(cap)
            except OutputError:
                pass  # the interruption is what the user hears of
            raise
        err = capture_error(e)
        err.failed_stage = cap.failed_stage = cap.failed_stage or "output"
        err.directory = cap.directory
        cap.error = cap.error or {"message": e.message, "hint": e.hint,
                                  "diagnoses": [d.__dict__ for d in err.diagnoses]}
        _tidy_failed(cap)
        _record_failure(cap, err)
        raise err from None
    try:
        write_capture_json(cap)
    except OutputError as e:
        where = f"{cap.directory}/{cap.vmcore}" if cap.vmcore else str(cap.directory)
        raise CaptureError(f"{e.message}; the dump is whole in {where} but has no record beside it",
                           hint=e.hint, stage="record", directory=cap.directory,
                           exit_status=e.exit_status) from None


def _output_fault(exc: BaseException, cap: Capture) -> OutputError | None:
    """A write fault outside any stage (disk full, read-only, removed), as its one line."""
    if isinstance(exc, OutputError):
        return exc
    if isinstance(exc, OSError) and is_fault(exc):
        return output_error(exc, cap.directory, what=Path(exc.filename).name if exc.filename else "the capture")
    return None


def _record_failure(cap: Capture, e: CaptureError) -> None:
    """capture.json for a failed capture; when it does not fit, the error says so."""
    try:
        write_capture_json(cap)
    except OutputError as fault:
        e.hint = "; ".join(filter(None, [e.hint, f"capture.json not written: {fault.message}"]))


def _tidy_failed(cap: Capture) -> None:
    """After a failure nothing may look complete: an unconverted stream or
    a partial dump is kept only as vmcore.partial (say so), an empty one is
    removed. On a read-only or removed directory what is left stays as it is."""
    out = cap.directory
    stream, partial = out / STREAM, out / PARTIAL
    try:
        if stream.exists():
            if partial.exists():
                partial.unlink()
            stream.replace(partial)
        if partial.exists():
            if partial.stat().st_size == 0:
                partial.unlink()
                cap.partial = None
            else:
                cap.partial = PARTIAL
                cap.sizes.setdefault("transferred", partial.stat().st_size)
    except OSError:
        cap.partial = STREAM if stream.exists() else (PARTIAL if partial.exists() else None)


def capture(base: LaunchOptions, opts: CaptureOptions, *, say=lambda msg: None) -> Capture:
    """Crash a guest and bring its vmcore home (see kdebug.capture.record for the result)."""
    opts.validate()
    trigger = get_trigger(opts.trigger, opts.run)
    kernel = find_kernel(base.kernel, base.vmlinux, base.tree, base.release)
    out = make_out_dir(opts.out)
    method = "qemu" if opts.method == "qemu" else "kdump"
    cap = _new(out, kernel, method=method, requested_method=opts.method, trigger=trigger.name,
               command=opts.run)
    if method == "kdump":
        cap.compression = None if opts.raw else opts.compression
        cap.via = opts.via
    if trigger.module:
        cap.tainted = TAINT
    clock = StageClock(cap)
    with claim_dir(out), _finishing(cap):
        if method == "kdump":
            try:
                run_kdump(base, opts, trigger, kernel, cap, clock)
            except CaptureError as e:
                if opts.method != "auto":
                    raise
                _tidy_failed(cap)
                _keep_kdump_logs(cap)
                why = f"kdump failed at stage {e.failed_stage}: {e.message}"
                say(f"{why}; falling back to a QEMU memory dump (booting again)")
                cap.fallback = why
                cap.method, cap.dump_level, cap.compression, cap.via = "qemu", None, None, None
                cap.dump_filter = cap.check = None
                cap.failed_stage, cap.error = None, None
                cap.partial = None
                run_qemu(base, opts, trigger, kernel, cap, clock)
        else:
            run_qemu(base, opts, trigger, kernel, cap, clock)
    return cap


def _keep_kdump_logs(cap: Capture) -> None:
    for kind in ("main", "capture"):
        name = cap.logs.pop(kind, None)
        if name and (cap.directory / name).exists():
            os.replace(cap.directory / name, cap.directory / f"kdump-{name}")
            cap.logs[f"kdump-{kind}"] = f"kdump-{name}"
    partial = cap.directory / PARTIAL
    if partial.exists():
        os.replace(partial, cap.directory / "kdump-vmcore.partial")
    # A whole dump that lacks kernel data (check_analysable) makes way for the QEMU one.
    if cap.vmcore and (cap.directory / cap.vmcore).exists():
        os.replace(cap.directory / cap.vmcore, cap.directory / "kdump-vmcore")
        cap.vmcore = None


def snapshot(base: LaunchOptions, *, session_name: str | None = None, use_session: bool = False,
             out: Path | None = None, run: str | None = None, resume: bool = True,
             boot_timeout: float = 120.0) -> Capture:
    """Dump a live guest: a running session's (QMP stop, dump, cont) or a fresh one's."""
    if use_session or session_name:
        session = find_session(session_name)
        k = session.kernel
        kernel = find_kernel(Path(k["image"]) if k.get("image") else None,
                             Path(k["vmlinux"]) if k.get("vmlinux") else None,
                             Path(k["tree"]) if k.get("tree") else None)
    else:
        session = None
        kernel = find_kernel(base.kernel, base.vmlinux, base.tree, base.release)
    out_dir = make_out_dir(out, "snapshot")
    cap = _new(out_dir, kernel, method="qemu", requested_method="qemu", trigger="snapshot", command=run)
    clock = StageClock(cap)
    with claim_dir(out_dir), _finishing(cap):
        if session is not None:
            cap.kernel["cmdline"] = session.cmdline
            snapshot_session(session, cap, clock, kernel, resume=resume)
        else:
            snapshot_fresh(base, cap, clock, kernel, run, boot_timeout)
    return cap
