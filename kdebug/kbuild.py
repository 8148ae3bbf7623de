"""`kdebug kernel build`: a small debug kernel from a source tree or tarball.

tinyconfig (or defconfig) + a kconfig fragment, `make olddefconfig`, then
bzImage, vmlinux and scripts_gdb. The finished tree is cached under the kdebug
cache dir by source identity + fragment hash, so a second build (CI's setup
step, then its tests) costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.errors import BuildError, ToolMissing, UsageError
from kdebug.paths import cache_dir
from kdebug.resources import launch_path

DEFAULT_FRAGMENT = launch_path("kconfig", "debug.config")
DEFAULT_SOURCE = Path("/usr/src/linux-source-6.1.tar.xz")
BASES = ("tinyconfig", "defconfig")
TARGETS = ("bzImage", "vmlinux", "scripts_gdb")
_OPT = re.compile(r"^(CONFIG_\w+)=(.*)$|^# (CONFIG_\w+) is not set$")


@dataclass
class BuildResult:
    tree: Path
    cached: bool
    seconds: float
    missing: list[str] = field(default_factory=list)  # fragment options olddefconfig dropped


def parse_fragment(text: str) -> dict[str, str]:
    """CONFIG_X=v / `# CONFIG_X is not set` lines -> {name: value ('n' for unset)}."""
    out = {}
    for line in text.splitlines():
        m = _OPT.match(line.strip())
        if m:
            if m.group(1):
                out[m.group(1)] = m.group(2)
            else:
                out[m.group(3)] = "n"
    return out


def unmet(fragment: dict[str, str], config: dict[str, str]) -> list[str]:
    """Fragment options the final .config does not have as asked."""
    return sorted(k for k, v in fragment.items() if config.get(k, "n") != v)


def build_key(source: Path, fragment_text: str, base: str) -> str:
    """Source identity (path, size, mtime of a tarball; Makefile version of a
    tree) + fragment + base config, hashed."""
    h = hashlib.sha256()
    st = source.stat()
    if source.is_file():
        h.update(f"{source.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode())
    else:
        h.update(str(source.resolve()).encode())
        mk = source / "Makefile"
        h.update(mk.read_bytes()[:400] if mk.exists() else b"")
    h.update(fragment_text.encode())
    h.update(base.encode())
    return h.hexdigest()[:16]


def _source_name(source: Path) -> str:
    name = source.name
    for suffix in (".tar.xz", ".tar.gz", ".tar.bz2", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _run(argv: list[str], cwd: Path, log, timeout: float) -> None:
    log.write(f"$ {' '.join(argv)}\n".encode())
    log.flush()
    try:
        rc = subprocess.run(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        raise BuildError(f"{' '.join(argv)} took more than {timeout:g} s", hint=f"see {log.name}") from None
    if rc != 0:
        raise BuildError(f"{' '.join(argv[:2])} failed (exit {rc})", hint=f"see {log.name}")


def _unpack(tarball: Path, dest: Path) -> Path:
    with tarfile.open(tarball) as tf:
        tf.extractall(dest, filter="tar" if hasattr(tarfile, "tar_filter") else None)
    dirs = [d for d in dest.iterdir() if d.is_dir()]
    if len(dirs) != 1 or not (dirs[0] / "Makefile").exists():
        raise BuildError(f"{tarball} does not unpack to one kernel source directory")
    return dirs[0]


def built_tree(source: Path = DEFAULT_SOURCE, fragment: Path = DEFAULT_FRAGMENT,
               base: str = "tinyconfig") -> Path | None:
    """The cached tree of an earlier identical build, or None."""
    if not source.exists() or not fragment.is_file():
        return None
    out = cache_dir("kernels") / f"{_source_name(source)}-{build_key(source, fragment.read_text(), base)}"
    done = out / ".kdebug-built"
    return Path(done.read_text().strip()) if done.exists() else None


def build_kernel(source: Path = DEFAULT_SOURCE, fragment: Path = DEFAULT_FRAGMENT, *,
                 base: str = "tinyconfig", jobs: int | None = None, timeout: float = 3600,
                 progress=lambda msg: None) -> BuildResult:
    """Build (or find cached) a debug kernel tree usable as ``--tree``."""
    if base not in BASES:
        raise UsageError(f"unknown base config {base!r} (use {' or '.join(BASES)})")
    if not source.exists():
        raise UsageError(f"kernel source {source} does not exist",
                         hint="apt-get install linux-source-6.1 (scripts/setup.sh)")
    if not fragment.is_file():
        raise UsageError(f"kconfig fragment {fragment} does not exist")
    for tool in ("make", "gcc", "flex", "bison", "bc"):
        if shutil.which(tool) is None:
            raise ToolMissing(f"{tool} not found", hint="run scripts/setup.sh (scripts/packages.d/gdb.txt)")
    frag_text = fragment.read_text()
    key = build_key(source, frag_text, base)
    out = cache_dir("kernels") / f"{_source_name(source)}-{key}"
    done = out / ".kdebug-built"
    t0 = time.monotonic()
    if done.exists():
        tree = Path(done.read_text().strip())
        return BuildResult(tree, True, 0.0, unmet(parse_fragment(frag_text), _read_config(tree)))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "build.log", "ab") as log:
        if source.is_file():
            tree = out / "src"
            if not (tree / ".kdebug-unpacked").exists():
                progress(f"unpacking {source}")
                shutil.rmtree(tree, ignore_errors=True)
                tree.mkdir()
                real = _unpack(source, tree)
                # One stable path for the tree: move the contents up.
                for item in real.iterdir():
                    item.rename(tree / item.name)
                real.rmdir()
                (tree / ".kdebug-unpacked").touch()
        else:
            # Out-of-tree build keeps the user's source clean.
            tree = out / "build"
            tree.mkdir(exist_ok=True)
        mk = ["make", "-C", str(source.resolve() if source.is_dir() else tree)]
        if source.is_dir():
            mk.append(f"O={tree}")
        progress(f"configuring ({base} + {fragment.name}) in {tree}")
        _run(mk + [base], tree, log, timeout)
        _run([str((source if source.is_dir() else tree) / "scripts/kconfig/merge_config.sh"),
              "-m", "-O", str(tree), str(tree / ".config"), str(fragment.resolve())], tree, log, timeout)
        _run(mk + ["olddefconfig"], tree, log, timeout)
        missing = unmet(parse_fragment(frag_text), _read_config(tree))
        j = jobs or os.cpu_count() or 1
        progress(f"building {' '.join(TARGETS)} with -j{j} (log: {out / 'build.log'})")
        _run(mk + [f"-j{j}", *TARGETS], tree, log, timeout)
    done.write_text(str(tree))
    return BuildResult(tree, False, time.monotonic() - t0, missing)


def _read_config(tree: Path) -> dict[str, str]:
    cfg = tree / ".config"
    return parse_fragment(cfg.read_text()) if cfg.exists() else {}
