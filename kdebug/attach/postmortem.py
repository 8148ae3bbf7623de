"""gdb on a dump: the same kd- commands as on a live guest.

gdb starts kdebug's dump stub as its remote target over a pipe
(``target remote | python -m kdebug.analysis.dumpstub VMCORE``): memory by
virtual address from drgn, registers from the dump's notes, one thread per
CPU, as QEMU's gdbstub shows a live guest. It reads ELF and kdump-compressed
dumps (a flattened stream is reassembled by open_dump first) without copying
guest memory anywhere; pages the dump left out are errors in gdb.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from pathlib import Path

from kdebug.attach.plan import AttachOptions, KernelFiles, gdb_argv, plan_for
from kdebug.attach.runner import check_gdb, run_gdb
from kdebug.elf import FormatError, file_module
from kdebug.errors import VmcoreError
from kdebug.paths import cache_dir
from kdebug.vmcore.locate import Dump
from kdebug.vmcore.notes import prstatus_descs

STUB_MODULE = "kdebug.analysis.dumpstub"


def kaslr_offset_of(dump: Dump) -> int:
    """The dump's KASLR offset from its VMCOREINFO (KERNELOFFSET, hex; absent without KASLR)."""
    return int(dump.info.vmcoreinfo.get("KERNELOFFSET", "0"), 16)


def stub_command(dump: Dump, python: str = sys.executable) -> str:
    """The shell command gdb runs as its remote target: this interpreter,
    with this kdebug first on its path, serving ``dump``."""
    package_parent = Path(__file__).resolve().parents[2]
    argv = [python, "-m", STUB_MODULE, str(dump.path), "--vmlinux", str(dump.vmlinux)]
    return f"PYTHONPATH={shlex.quote(str(package_parent))} exec {shlex.join(argv)}"


def describe(dump: Dump) -> str:
    info = dump.info
    what = f"{info.format} dump" + (f", makedumpfile -d {info.dump_level}" if info.dump_level is not None else "")
    return f"kdebug: gdb reads {dump.original} ({what}) through kdebug's dump stub"


def module_links(files: tuple[Path, ...]) -> Path | None:
    """A directory where each of a dump's own module files (a capture keeps
    them as NAME-RELEASE-HASH.ko) is linked as the NAME.ko kd-symbols looks
    for; the first file of each module name wins. None without any."""
    named: dict[str, Path] = {}
    for f in files:
        try:
            name = file_module(f).name
        except (OSError, FormatError):
            continue
        if name:
            named.setdefault(name, f.resolve())
    if not named:
        return None
    key = hashlib.sha1(repr(sorted((n, str(p)) for n, p in named.items())).encode()).hexdigest()[:16]
    d = cache_dir("gdb-dump-modules", key)
    for name, path in named.items():
        link = d / f"{name}.ko"
        if not link.is_symlink():
            link.symlink_to(path)
    return d


def attach_dump(dump: Dump, a: AttachOptions, echo=print) -> int:
    """gdb on ``dump`` with the kd- commands."""
    check_gdb()
    # What the stub would stop on, said here in one line rather than by gdb as a closed connection.
    if dump.info.format not in ("elf", "kdump"):
        raise VmcoreError(f"gdb cannot read {dump.original}: a {dump.info.format} dump")
    if not prstatus_descs(dump.path, dump.info.format):
        raise VmcoreError(f"{dump.original} holds no CPU registers (no NT_PRSTATUS note): gdb would have no thread",
                          hint="open it with drgn (the default) or --crash")
    echo(describe(dump))
    k = KernelFiles(vmlinux=dump.vmlinux, release=dump.info.release or "", source="dump",
                    module_debug_dir=dump.module_debug_dir)
    plan = plan_for(k, 0, kaslr_offset_of(dump), a, stub=stub_command(dump))
    own = module_links(dump.module_files)
    if own is not None:  # the dump's own out-of-tree modules first
        plan.module_dirs.insert(0, own)
    return run_gdb(gdb_argv(plan), timeout=a.gdb_timeout).returncode
