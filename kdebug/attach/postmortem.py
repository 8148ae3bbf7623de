"""gdb on a dump: the same kd- commands as on a live guest, over a view of
the dump that gdb can read by virtual address (kdebug.vmcore.gdbview)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from kdebug.attach.plan import AttachOptions, KernelFiles, gdb_argv, plan_for
from kdebug.attach.runner import check_gdb, run_gdb
from kdebug.errors import UsageError
from kdebug.paths import cache_dir
from kdebug.vmcore.gdbview import write_gdb_view
from kdebug.vmcore.locate import Dump


def kaslr_offset_of(dump: Dump) -> int:
    """The dump's KASLR offset from its VMCOREINFO (KERNELOFFSET, hex; absent without KASLR)."""
    return int(dump.info.vmcoreinfo.get("KERNELOFFSET", "0"), 16)


def attach_dump(dump: Dump, a: AttachOptions, echo=print) -> int:
    """gdb on ``dump`` with the kd- commands; the view is removed afterwards."""
    if dump.info.format != "elf":
        raise UsageError(f"gdb cannot read {dump.original}: it is a {dump.info.format} dump",
                         hint="gdb needs an ELF dump: capture with `--method qemu` or `--raw`, "
                              "or open this one with drgn (the default) or --crash")
    check_gdb()
    # Beside kdebug's other caches (not /tmp, which may be small): all guest memory, 0700/0600.
    tmp = Path(tempfile.mkdtemp(prefix="gdbview-", dir=cache_dir()))
    try:
        t0 = time.monotonic()
        view = write_gdb_view(dump.info, tmp / "core")
        echo(f"kdebug: gdb view of {dump.original}: {view.segments} mappings, "
             f"{view.mapped_bytes >> 20} MiB, {time.monotonic() - t0:.1f} s")
        k = KernelFiles(vmlinux=dump.vmlinux, release=dump.info.release or "", source="dump",
                        module_debug_dir=dump.module_debug_dir)
        plan = plan_for(k, 0, kaslr_offset_of(dump), a, core=view.path)
        return run_gdb(gdb_argv(plan), timeout=a.gdb_timeout).returncode
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
