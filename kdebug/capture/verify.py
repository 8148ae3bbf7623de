"""The last stage of every capture, kdump's or QEMU's: the dump is whole and
this kernel's before it is called ``vmcore``, and drgn can read what a report
needs from it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from kdebug.analysis.health import check_vmcore
from kdebug.capture.record import Capture
from kdebug.errors import CaptureError, KdebugError
from kdebug.kernel import Kernel
from kdebug.plan.diagnose import Diagnosis
from kdebug.vmcore.info import VmcoreInfo, read_dump
from kdebug.vmcore.locate import Dump

#: The dump's name until it is checked whole and this kernel's.
PARTIAL = "vmcore.partial"


def verify(cap: Capture, partial: Path, kernel: Kernel, *, expect_panic: bool = True,
           on_vmcore: Callable[[Path, Path | None], None] | None = None) -> None:
    """Check the dump is whole and is this kernel's; only then call it vmcore.
    Then check drgn can read what a report needs from it (see check_analysable)."""
    chk = read_dump(partial)
    cap.format = chk.format
    cap.sizes["vmcore"] = chk.size
    bid = chk.build_id
    cap.vmcoreinfo = {"release": chk.release, "build_id": bid,
                      "build_id_matches": bool(bid and kernel.build_id and bid == kernel.build_id)}
    if not chk.complete:
        cap.partial = partial.name
        raise CaptureError(f"the dump {chk.problem}",
                           hint=f"kept as {partial.name}; run the capture again")
    if kernel.build_id and bid and bid != kernel.build_id:
        cap.partial = partial.name
        raise CaptureError(f"the dump's build-id {bid} is not the kernel's {kernel.build_id}")
    final = cap.directory / "vmcore"
    partial.replace(final)
    cap.vmcore = final.name
    cap.partial = None
    if on_vmcore is not None:
        on_vmcore(final, kernel.vmlinux)
    check_analysable(cap, dataclasses.replace(chk, path=final), kernel, expect_panic)


def check_analysable(cap: Capture, info: VmcoreInfo, kernel: Kernel, expect_panic: bool) -> None:
    """A whole dump can still lack what a report needs (a filter that drops
    kernel data): walk the tasks to the end, read the panic task and the
    log with drgn. A dump that fails stays ``vmcore`` (its bytes are whole and
    a report on it says what is missing), but the capture fails with the cause
    and the fix."""
    if kernel.vmlinux is None:
        return
    try:
        check = check_vmcore(Dump(info, kernel.vmlinux, kernel.module_debug_dir, info.path),
                             expect_panic=expect_panic)
    except KdebugError:
        return  # drgn cannot open it at all (no debug info?): the post-mortem says why
    cap.check = check.to_dict()
    if not check.complete:
        g = check.gaps[0]
        d = Diagnosis("dump-incomplete", check.cause, check.fix,
                      f"{g.section}: {g.error}" + (f" at {g.address:#x}" if g.address is not None else ""))
        raise CaptureError(f"the dump lacks kernel data: {d.cause}", hint=d.fix, diagnoses=[d])
