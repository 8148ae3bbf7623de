"""kdebug's crash extension (crash_ext/kdebug.c): built on demand into the
cache, keyed by its source, crash's extension header and the crash binary
it is loaded into, so a new crash or a new kdebug rebuilds it once."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from kdebug.errors import ToolMissing
from kdebug.paths import cache_dir
from kdebug.resources import CRASH_EXT, data_path

#: Debian's crash package ships the header extensions are built against.
DEFS_H = Path("/usr/include/crash/defs.h")
#: Where a crash's defs.h sits relative to its binary: <prefix>/bin/crash and
#: <prefix>/include/crash/defs.h, as Debian installs it and as kdebug's own
#: build (scripts/setup.d/crash.sh) does.
DEFS_H_IN_PREFIX = Path("include/crash/defs.h")
SOURCE = "kdebug.c"

#: The machine macro crash's extensions/Makefile passes (-D$(TARGET)), by uname -m.
TARGETS = {"x86_64": "X86_64", "aarch64": "ARM64", "ppc64le": "PPC64", "ppc64": "PPC64",
           "s390x": "S390X", "riscv64": "RISCV64", "i686": "X86", "i386": "X86"}


class ExtensionError(ToolMissing):
    """The extension cannot be built here (no gcc, no defs.h, an unknown machine)."""


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def compile_argv(source: Path, output: Path, machine: str | None = None) -> list[str]:
    """gcc's command line, as crash's extensions/Makefile builds an extension
    with a constructor (so without -nostartfiles, which that Makefile keeps
    for the older _init() style). GDB_FLAGS is left out: defs.h uses it only
    for gdb's type codes, which kdps does not touch."""
    machine = machine or platform.machine()
    target = TARGETS.get(machine)
    if target is None:
        raise ExtensionError(f"kdebug's crash extension does not know the machine {machine!r}",
                             hint="known: " + ", ".join(sorted(TARGETS)))
    return ["gcc", "-Wall", "-g", "-shared", "-rdynamic", "-fPIC", f"-D{target}", "-o", str(output), str(source)]


def defs_h_for(binary: Path) -> Path:
    """The defs.h installed with this crash binary (its prefix's
    include/crash/defs.h; a symlinked binary's real prefix too)."""
    for b in dict.fromkeys((binary, binary.resolve())):
        h = b.parent.parent / DEFS_H_IN_PREFIX
        if h.is_file():
            return h
    return binary.parent.parent / DEFS_H_IN_PREFIX


def build_extension(crash: str = "crash", defs_h: Path | None = None, gcc: str = "gcc") -> Path:
    """The path of kdebug.so for this crash, compiling it on first use,
    against the defs.h installed with that crash (``defs_h``: another)."""
    if shutil.which(gcc) is None:
        raise ExtensionError("cannot build kdebug's crash extension: gcc is not installed",
                             hint="apt-get install gcc")
    binary = shutil.which(crash)
    if binary is None:
        raise ExtensionError("crash is not installed", hint="apt-get install crash")
    defs_h = defs_h or defs_h_for(Path(binary))
    if not defs_h.is_file():
        raise ExtensionError(f"cannot build kdebug's crash extension: {defs_h} is missing",
                             hint=f"the header of {binary}: scripts/setup.sh installs it with the crash "
                                  "it builds, apt-get install crash with Debian's")
    source = data_path(CRASH_EXT, SOURCE)
    out_dir = cache_dir("crash-ext")
    so = out_dir / f"kdebug-{_digest(source, defs_h, Path(binary).resolve())}.so"
    if so.is_file():
        return so
    # Built under a temporary name and renamed, so two reports starting at
    # once never load a half-written object.
    fd, tmp = tempfile.mkstemp(prefix=".kdebug-", suffix=".so", dir=out_dir)
    os.close(fd)
    try:
        argv = compile_argv(source, Path(tmp))
        argv[0] = gcc
        argv[1:1] = ["-I", str(defs_h.parent)]  # the source says #include "defs.h", as crash's own do
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise ExtensionError("cannot build kdebug's crash extension: gcc did not finish in 300 s") from None
        if res.returncode != 0:
            last = [ln for ln in res.stderr.splitlines() if "error" in ln] or res.stderr.splitlines() or ["?"]
            raise ExtensionError(f"cannot build kdebug's crash extension: {last[0].strip()}",
                                 hint=f"gcc against {defs_h}")
        os.replace(tmp, so)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return so
