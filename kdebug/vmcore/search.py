"""Where a dump's debug info is, by build-id: the machine's debug
directories, kdebug's build trees and cache, then debuginfod servers.

The dump's build-id (VMCOREINFO ``BUILD-ID``, since v5.9: commit
0935288c6e00 "kdump: append kernel build-id string to VMCOREINFO") is the
key; a file is used only when its own build-id note says the same. Each
answer is a :class:`Piece` naming where it came from, so ``kdebug doctor
DUMP`` and the report can say it; when nothing can be had,
:class:`DebugInfoMissing` carries what a tier-0 report needs to tell the
user how to get it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kdebug import kernel
from kdebug.errors import KdebugError, KernelError
from kdebug.paths import debug_dirs, debuginfo_cache
from kdebug.vmcore.debuginfod import (
    DebuginfodError,
    Progress,
    cache_path,
    debug_file_build_id,
    fetch,
    probe,
    servers,
    stall_timeout,
)
from kdebug.vmcore.package import debug_package

#: Where a piece came from (Piece.source).
GIVEN, RECORDED, DEBUG_DIR, BUILD_TREE, CACHE, DEBUGINFOD, MISSING = (
    "given", "capture.json", "debug-dir", "build-tree", "cache", "debuginfod", "missing")
NO_BUILD_ID = ("VMCOREINFO has no BUILD-ID (kernels before v5.9, commit 0935288c6e00): "
               "the vmlinux is paired by release only, and debuginfod cannot be asked")


@dataclass(frozen=True)
class Piece:
    """One debug file of a dump: where it is, or why it is not."""

    what: str  # "vmlinux" or a module's name
    build_id: str | None
    path: Path | None
    source: str  # GIVEN, RECORDED, DEBUG_DIR, BUILD_TREE, CACHE, DEBUGINFOD or MISSING
    where: str = ""  # the directory or URL it came from (MISSING: what was tried)
    note: str = ""

    @property
    def found(self) -> bool:
        return self.path is not None


class DebugInfoMissing(KernelError):
    """No vmlinux with the dump's build-id could be had; says how to get one."""

    def __init__(self, message: str, *, hint: str | None = None, build_id: str | None,
                 release: str | None, package: str, urls: tuple[str, ...], tried: tuple[str, ...]):
        super().__init__(message, hint=hint)
        self.build_id = build_id
        self.release = release
        self.package = package  # the exact debug package to install
        self.urls = urls  # the debuginfod servers asked (DEBUGINFOD_URLS)
        self.tried = tried  # what each place said


@dataclass
class DebugSearch:
    """The places searched, in order, and the download settings."""

    dirs: tuple[Path, ...]  # the machine's debug directories (KDEBUG_DEBUG_DIRS)
    cache: Path  # kdebug's debuginfo cache (a .build-id tree)
    urls: tuple[str, ...] = ()  # debuginfod servers (DEBUGINFOD_URLS)
    boot_dirs: tuple[Path, ...] = ()  # more directories of vmlinux-RELEASE files
    trees: tuple[Path, ...] = ()  # kdebug's kernel build trees, and its indexed vmlinux copies
    progress: Progress | None = None
    stall: float = 30.0
    failures: list[str] = field(default_factory=list)  # modules debuginfod could not give
    _index: dict[Path, dict[str, list[Path]]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, progress: Progress | None = None) -> DebugSearch:
        dirs = debug_dirs()
        boot = tuple(d / "boot" for d in dirs)
        if "KDEBUG_DEBUG_DIR" in os.environ and "KDEBUG_DEBUG_DIRS" not in os.environ:
            dirs, boot = (), (kernel.DEBUG_BOOT,)  # the older setting: only that vmlinux directory
        return cls(dirs=dirs, cache=debuginfo_cache(), urls=servers(), boot_dirs=boot,
                   trees=_kdebug_vmlinuxes(), progress=progress, stall=stall_timeout())

    def directories(self) -> tuple[Path, ...]:
        """What drgn searches by build-id and for modules: the debug
        directories, then the cache."""
        return (*self.dirs, self.cache)

    def module_dirs(self, release: str | None) -> tuple[Path, ...]:
        """Module debug trees of ``release``: Debian's ``lib/modules/R``
        under a debug directory, and ``usr/lib/modules/R`` (merged /usr)."""
        if not release:
            return ()
        cands = [d / sub / "modules" / release for d in self.dirs for sub in ("lib", "usr/lib")]
        return tuple(c for c in cands if c.is_dir())

    # --- the vmlinux -------------------------------------------------------------

    def vmlinux(self, build_id: str | None, release: str | None, *, fetch_it: bool = True) -> Piece:
        """The vmlinux with ``build_id`` (or, with none, of ``release``):
        local first, then the servers (downloaded unless ``fetch_it`` is
        False: then a piece with source DEBUGINFOD and no path, if a server
        has it). DebugInfoMissing when nothing has it."""
        piece = self.local_vmlinux(build_id, release)
        if piece is not None:
            return piece
        tried: list[str] = []
        if build_id and self.urls:
            try:
                if not fetch_it:
                    return self.probe(build_id, "vmlinux")
                path, url = fetch(build_id, "vmlinux", self.urls, self.cache, progress=self.progress,
                                  stall=self.stall)
                return Piece("vmlinux", build_id, path, DEBUGINFOD if url != "cache" else CACHE, url)
            except DebuginfodError as e:
                tried.append(e.message)
        raise self.missing(build_id, release, tried)

    def local_vmlinux(self, build_id: str | None, release: str | None) -> Piece | None:
        for source, cand in self._vmlinux_candidates(build_id, release):
            try:
                have = kernel.vmlinux_build_id(cand)
            except KdebugError:
                continue
            if build_id and have == build_id:
                return Piece("vmlinux", build_id, cand, source, str(cand.parent))
            if not build_id and release and release in cand.as_posix() and have:
                return Piece("vmlinux", have, cand, source, str(cand.parent), note=NO_BUILD_ID)
        return None

    def _vmlinux_candidates(self, build_id: str | None, release: str | None) -> Iterator[tuple[str, Path]]:
        seen: set[Path] = set()

        def new(p: Path) -> bool:
            if p in seen or not p.is_file():
                return False
            seen.add(p)
            return True

        if release:
            named = [b / f"vmlinux-{release}" for b in self.boot_dirs]
            named += [d / f"vmlinux-{release}" for d in self.dirs]
            named += [m / "vmlinux" for m in self.module_dirs(release)]
            yield from ((DEBUG_DIR, p) for p in named if new(p))
        if not build_id:
            return
        by_id = [d / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug" for d in self.dirs]
        yield from ((DEBUG_DIR, p) for p in by_id if new(p))
        # A vmlinux named after another release string (a rebuilt package, a copy).
        yield from ((DEBUG_DIR, p) for b in self.boot_dirs if b.is_dir()
                    for p in sorted(b.glob("vmlinux-*")) if new(p))
        yield from ((BUILD_TREE, p) for p in self.trees if new(p))
        cached = cache_path(self.cache, build_id)
        if new(cached):
            yield CACHE, cached

    def missing(self, build_id: str | None, release: str | None, tried: list[str]) -> DebugInfoMissing:
        package = debug_package(release)
        where = ", ".join(str(d) for d in (*self.boot_dirs, *self.dirs)) or "no debug directory"
        what = f"build-id {build_id}" if build_id else f"release {release} ({NO_BUILD_ID})"
        msg = f"no debug vmlinux with {what} ({release or 'unknown release'}) in {where} or kdebug's cache"
        if tried:
            msg += "; " + "; ".join(tried)
        hint = f"install {package} or pass --vmlinux"
        if build_id and not self.urls:
            hint += ", or set DEBUGINFOD_URLS to a debuginfod server that has it"
        return DebugInfoMissing(msg, hint=hint, build_id=build_id, release=release, package=package,
                                urls=self.urls, tried=tuple(tried))

    # --- modules -------------------------------------------------------------

    def local_module(self, name: str, build_id: str | None, release: str | None,
                     extra: tuple[Path, ...] = ()) -> Piece | None:
        """A module's debug file on this machine, each checked by build-id:
        among ``extra`` files (out-of-tree modules), in the debug
        directories' .build-id trees, by name in the module debug trees,
        then in kdebug's cache."""
        key = _module_key(name)
        for p in extra:  # paired by build-id (a capture names its copies name-release-hash.ko)
            if _id(p) == build_id if build_id else _module_key(p.name) == key:
                return Piece(name, build_id, p, GIVEN, str(p.parent))
        for d in self.dirs if build_id else ():
            p = d / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"
            if p.is_file() and _id(p) == build_id:
                return Piece(name, build_id, p, DEBUG_DIR, str(d))
        for root in self.module_dirs(release):
            for p in self._module_index(root).get(key, ()):
                if build_id is None or _id(p) == build_id:
                    return Piece(name, build_id, p, DEBUG_DIR, str(root))
        p = cache_path(self.cache, build_id) if build_id else None
        if p is not None and p.is_file():
            return Piece(name, build_id, p, CACHE, str(self.cache))
        return None

    def _module_index(self, root: Path) -> dict[str, list[Path]]:
        """name -> the module debug files under ``root`` (walked once)."""
        if root not in self._index:
            index: dict[str, list[Path]] = {}
            for dirpath, _dirs, files in os.walk(root):
                for f in files:
                    if f.endswith((".ko", ".ko.debug")):
                        index.setdefault(_module_key(f), []).append(Path(dirpath) / f)
            self._index[root] = index
        return self._index[root]

    def fetch_module(self, name: str, build_id: str) -> Path | None:
        """A module's debug file from the servers (None, and the reason kept
        in ``failures``, when none gives it)."""
        if not self.urls:
            return None
        try:
            path, _url = fetch(build_id, name, self.urls, self.cache, progress=self.progress, stall=self.stall)
        except KdebugError as e:
            self.failures.append(f"{name}: {e}")
            return None
        return path

    def probe(self, build_id: str, what: str) -> Piece:
        """Where a server has ``build_id`` (a one-byte ranged GET: debuginfod
        answers no HEAD), without downloading it."""
        url, size, said = probe(build_id, self.urls, stall=self.stall)
        if url is None:
            return Piece(what, build_id, None, MISSING, "; ".join(said) or "no DEBUGINFOD_URLS")
        mb = f" ({size / 1e6:.1f} MB)" if size else ""
        return Piece(what, build_id, None, DEBUGINFOD, url, note=f"on the server{mb}, not fetched yet")


def _kdebug_vmlinuxes() -> tuple[Path, ...]:
    """vmlinux files kdebug made: its kernel build trees, its indexed copies for crash."""
    base = debuginfo_cache().parent  # kdebug's cache, not created here (it may be read-only)
    built = [d / "vmlinux" for d in sorted((base / "kernels").glob("*")) if (d / ".kdebug-built").exists()]
    return (*built, *sorted((base / "crash-vmlinux").glob("*.vmlinux")))


def _id(path: Path) -> str | None:
    try:
        return debug_file_build_id(path)
    except (OSError, ValueError):
        return None


def _module_key(name: str) -> str:
    """A module's name as the kernel keys it: no suffix, '-' as '_'."""
    return name.split(".", 1)[0].replace("-", "_")

