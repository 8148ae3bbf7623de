"""gdb on a dump: the same kd- commands as on a live guest.

gdb's remote target is kdebug's dump stub (kdebug.analysis.dumpstub) on a
Unix socket in kdebug's private runtime directory (``target remote SOCKET``;
no port): memory by virtual address from drgn, registers from the dump's
notes, one thread per CPU, as QEMU's gdbstub shows a live guest. It reads
ELF and kdump-compressed dumps (a flattened stream is reassembled by
open_dump first) without copying guest memory anywhere; pages the dump left
out are errors in gdb. The socket is bound before the stub starts, so gdb
cannot come first, and it is gone when gdb is.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kdebug.attach.plan import AttachOptions, KernelFiles, gdb_argv, plan_for
from kdebug.attach.runner import check_gdb, run_gdb
from kdebug.elf import FormatError, file_module
from kdebug.errors import DebuggerError, VmcoreError
from kdebug.paths import cache_dir, runtime_dir
from kdebug.vmcore.locate import Dump
from kdebug.vmcore.notes import prstatus_descs

STUB_MODULE = "kdebug.analysis.dumpstub"


def kaslr_offset_of(dump: Dump) -> int:
    """The dump's KASLR offset from its VMCOREINFO (KERNELOFFSET, hex; absent without KASLR)."""
    return int(dump.info.vmcoreinfo.get("KERNELOFFSET", "0"), 16)


def stub_argv(dump: Dump, fd: int, python: str = sys.executable) -> list[str]:
    """The stub serving ``dump`` on the listening socket ``fd``: this interpreter."""
    return [python, "-m", STUB_MODULE, str(dump.path), "--vmlinux", str(dump.vmlinux), "--fd", str(fd)]


def stub_env() -> dict[str, str]:
    """This kdebug first on the stub's path, wherever it was started from."""
    package_parent = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


@contextlib.contextmanager
def running_stub(dump: Dump) -> Iterator[str]:
    """The stub for ``dump``, listening: yields its socket's path. Its stdin
    is a pipe from here, so it also ends when kdebug does."""
    d = Path(tempfile.mkdtemp(prefix="gdbstub-", dir=runtime_dir()))
    path = str(d / "dump.sock")
    proc = None
    try:
        if " " in path or len(path.encode()) > 100:
            raise DebuggerError(f"cannot make gdb's socket at {path}: it is too long or has a space",
                                hint="set KDEBUG_RUNTIME_DIR to a short private directory")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            listener.listen(1)
            proc = subprocess.Popen(stub_argv(dump, listener.fileno()), pass_fds=(listener.fileno(),),
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=stub_env())
        yield path
    finally:
        if proc is not None:
            proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(d, ignore_errors=True)


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
    own = module_links(dump.module_files)
    with running_stub(dump) as sock:
        plan = plan_for(k, 0, kaslr_offset_of(dump), a, remote=sock)
        if own is not None:  # the dump's own out-of-tree modules first
            plan.module_dirs.insert(0, own)
        return run_gdb(gdb_argv(plan), timeout=a.gdb_timeout).returncode
