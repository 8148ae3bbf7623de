"""``--dump``: once the first bad commit is known, one full capture of it
through kdebug's crash-loop library (QEMU's memory dump, the drgn report
saved beside it), next to the console-only evidence (adapter)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kdebug.bisect.runs import Reproducer
from kdebug.capture.plan import CaptureOptions, Timeouts
from kdebug.crashloop import crash_loop
from kdebug.errors import KdebugError


def dump_first_bad(rep: Reproducer, files: dict[str, Path], say, tree: Path | None = None) -> dict:
    """Capture one run of the first bad commit (its built ``files``, or for
    a kernel history its built ``tree``): the directory and the report's
    signature, or why there is none (a flaky bug may not crash this time)."""
    base = dataclasses.replace(rep.base, extra_files={**rep.base.extra_files, **files})
    if tree is not None:
        base = dataclasses.replace(base, tree=tree, kernel=None, vmlinux=None, release=None)
    run = rep.trigger.console if rep.trigger.returns else None
    opts = CaptureOptions(method="qemu", trigger=rep.trigger.name if run is None else "sysrq", run=run,
                          setup=rep.setup, panic_on=rep.panic_on,
                          timeouts=Timeouts(boot=rep.boot_timeout, panic=rep.panic_timeout))
    say("dump: capturing a run of the first bad commit")
    try:
        loop = crash_loop(base, opts, crash=False, say=lambda m: say(f"dump: {m}"))
    except KdebugError as e:
        say(f"dump: none ({e.message})")
        return {"directory": None, "error": e.message}
    return {"directory": str(loop.capture.directory), "signature": loop.report.signature}
