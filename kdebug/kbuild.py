"""`kdebug kernel build`: a small debug kernel from a source tree or tarball.

tinyconfig (or defconfig) + kconfig fragments applied in order, `make
olddefconfig`, then bzImage, vmlinux and scripts_gdb, and `modules` when the
configuration has any (``=m``). The finished tree is cached under the kdebug
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
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.errors import BuildError, ToolMissing, UsageError
from kdebug.paths import cache_dir
from kdebug.resources import launch_path

DEFAULT_FRAGMENT = launch_path("kconfig", "debug.config")
PRESETS = launch_path("kconfig", "presets.toml")


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    fragments: tuple[Path, ...]  # after debug.config, in order


def load_presets(path: Path = PRESETS) -> dict[str, Preset]:
    """The presets `kdebug kernel build --preset` knows (launch/kconfig/presets.toml)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot read the kernel presets {path}: {e}") from None
    out = {}
    for name, body in data.items():
        frags = tuple(launch_path("kconfig", f"{f}.config") for f in body.get("fragments", []))
        missing = [str(f) for f in frags if not f.is_file()]
        if not frags or missing:
            raise UsageError(f"kernel preset {name!r} in {path} names no fragment or a missing one: "
                             f"{', '.join(missing) or '(none)'}")
        out[name] = Preset(name, body.get("summary", ""), frags)
    return out


def preset_fragments(name: str, presets: dict[str, Preset] | None = None) -> tuple[Path, ...]:
    """debug.config and the preset's fragments; an unknown name lists the known ones."""
    presets = load_presets() if presets is None else presets
    if name not in presets:
        raise UsageError(f"unknown preset {name!r} (known: {', '.join(sorted(presets))})")
    return (DEFAULT_FRAGMENT, *presets[name].fragments)


#: The second tree the tests boot (scripts/setup.d/gdb.sh builds it): the
#: sanitizers preset (KASAN, KFENCE, UBSAN, lockdep, list and atomic-sleep
#: checks) plus the QEMU devices' drivers as modules, so one extra kernel
#: serves the --tree modules tests and the crash-taxonomy tests.
MODULES_FRAGMENTS = (*preset_fragments("sanitizers"), launch_path("kconfig", "modules.config"))
#: kdump's capture kernel (scripts/setup.d/gdb.sh; kdebug.capture.capture_kernel picks it).
CAPTURE_FRAGMENTS = (DEFAULT_FRAGMENT, launch_path("kconfig", "capture.config"))
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


def wants_modules(config: dict[str, str]) -> bool:
    """Whether `make modules` has anything to build for this .config."""
    return config.get("CONFIG_MODULES") == "y" and "m" in config.values()


def fragment_path(name: str | Path) -> Path:
    """A fragment file, or the name of one kdebug ships ("modules" is
    launch/kconfig/modules.config)."""
    p = Path(name)
    if p.exists() or "/" in str(name):
        return p
    shipped = launch_path("kconfig", p.name if p.suffix == ".config" else f"{p.name}.config")
    return shipped if shipped.is_file() else p


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


def _fragments(fragments: Path | Sequence[Path]) -> list[Path]:
    return [fragments] if isinstance(fragments, Path) else list(fragments)


def _fragment_text(fragments: list[Path]) -> str:
    # One fragment hashes as before, so trees built earlier stay cached.
    return "".join(f.read_text() for f in fragments)


def _out_dir(source: Path, fragments: list[Path], base: str) -> Path:
    return cache_dir("kernels") / f"{_source_name(source)}-{build_key(source, _fragment_text(fragments), base)}"


def built_tree(source: Path = DEFAULT_SOURCE, fragments: Path | Sequence[Path] = DEFAULT_FRAGMENT,
               base: str = "tinyconfig") -> Path | None:
    """The cached tree of an earlier identical build, or None."""
    frags = _fragments(fragments)
    if not source.exists() or not all(f.is_file() for f in frags):
        return None
    done = _out_dir(source, frags, base) / ".kdebug-built"
    return Path(done.read_text().strip()) if done.exists() else None


def build_kernel(source: Path = DEFAULT_SOURCE, fragments: Path | Sequence[Path] = DEFAULT_FRAGMENT, *,
                 base: str = "tinyconfig", jobs: int | None = None, timeout: float = 3600,
                 progress=lambda msg: None) -> BuildResult:
    """Build (or find cached) a debug kernel tree usable as ``--tree``;
    ``fragments`` are merged onto ``base`` in order, later ones winning."""
    frags = _fragments(fragments)
    if base not in BASES:
        raise UsageError(f"unknown base config {base!r} (use {' or '.join(BASES)})")
    if not source.exists():
        raise UsageError(f"kernel source {source} does not exist",
                         hint="apt-get install linux-source-6.1 (scripts/setup.sh)")
    if not frags:
        raise UsageError("no kconfig fragment given")
    for f in frags:
        if not f.is_file():
            raise UsageError(f"kconfig fragment {f} does not exist",
                             hint="pass a file, or the name of a shipped one (debug, modules, kasan, kfence, ubsan, "
                                  "lockdep, checks)")
    for tool in ("make", "gcc", "flex", "bison", "bc"):
        if shutil.which(tool) is None:
            raise ToolMissing(f"{tool} not found", hint="run scripts/setup.sh (scripts/packages.d/gdb.txt)")
    # Later fragments override earlier ones, as merge_config.sh applies them.
    wanted: dict[str, str] = {}
    for f in frags:
        wanted.update(parse_fragment(f.read_text()))
    out = _out_dir(source, frags, base)
    done = out / ".kdebug-built"
    t0 = time.monotonic()
    if done.exists():
        tree = Path(done.read_text().strip())
        built = _complete_modules(source, tree, out, jobs, timeout, progress)
        return BuildResult(tree, not built, time.monotonic() - t0 if built else 0.0,
                           unmet(wanted, _read_config(tree)))
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
        progress(f"configuring ({base} + {' + '.join(f.name for f in frags)}) in {tree}")
        _run(mk + [base], tree, log, timeout)
        _run([str((source if source.is_dir() else tree) / "scripts/kconfig/merge_config.sh"),
              "-m", "-O", str(tree), str(tree / ".config"), *(str(f.resolve()) for f in frags)],
             tree, log, timeout)
        _run(mk + ["olddefconfig"], tree, log, timeout)
        config = _read_config(tree)
        missing = unmet(wanted, config)
        targets = [*TARGETS, "modules"] if wants_modules(config) else list(TARGETS)
        j = jobs or os.cpu_count() or 1
        progress(f"building {' '.join(targets)} with -j{j} (log: {out / 'build.log'})")
        _run(mk + [f"-j{j}", *targets], tree, log, timeout)
    done.write_text(str(tree))
    return BuildResult(tree, False, time.monotonic() - t0, missing)


def _complete_modules(source: Path, tree: Path, out: Path, jobs: int | None, timeout: float,
                      progress) -> bool:
    """A tree cached before `modules` was one of the targets: build its
    modules now (an incremental make; vmlinux is up to date). True if it ran."""
    if not wants_modules(_read_config(tree)) or (tree / "modules.order").is_file():
        return False
    mk = ["make", "-C", str(source.resolve() if source.is_dir() else tree)]
    if source.is_dir():
        mk.append(f"O={tree}")
    j = jobs or os.cpu_count() or 1
    progress(f"building the modules of cached tree {tree} with -j{j} (log: {out / 'build.log'})")
    with open(out / "build.log", "ab") as log:
        _run(mk + [f"-j{j}", "modules"], tree, log, timeout)
    return True


def _read_config(tree: Path) -> dict[str, str]:
    cfg = tree / ".config"
    return parse_fragment(cfg.read_text()) if cfg.exists() else {}
