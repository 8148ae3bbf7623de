"""Open a dump for analysis: find it where a machine left it, identify it,
reassemble a flattened stream, and pair it with the vmlinux whose build-id
VMCOREINFO names."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from kdebug import kernel
from kdebug.errors import KernelError, UsageError
from kdebug.vmcore.debuginfod import Progress
from kdebug.vmcore.flattened import reassemble
from kdebug.vmcore.info import VmcoreInfo, identify
from kdebug.vmcore.layouts import DumpSite, locate
from kdebug.vmcore.search import GIVEN, NO_BUILD_ID, RECORDED, DebugSearch, Piece


@dataclass
class Dump:
    """A vmcore ready for drgn and crash."""

    info: VmcoreInfo
    vmlinux: Path
    module_debug_dir: Path | None
    original: Path  # what the user named (a flattened stream is reassembled elsewhere)
    site: DumpSite | None = None  # where it was found, and the log saved beside it
    #: Out-of-tree module files that may carry debug info for the dump's
    #: modules; the engine pairs each with a loaded module by build-id.
    module_files: tuple[Path, ...] = ()
    #: Where the debug info is searched (and fetched) for the vmlinux and
    #: the modules; where the vmlinux came from.
    search: DebugSearch | None = None
    vmlinux_piece: Piece | None = None

    @property
    def notes(self) -> tuple[str, ...]:
        """What a report should say about the debug info (e.g. paired by release only)."""
        return (self.vmlinux_piece.note,) if self.vmlinux_piece and self.vmlinux_piece.note else ()

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def saved_dmesg(self) -> Path | None:
        return self.site.dmesg if self.site else None


def open_dump(path: Path, vmlinux: Path | None = None, tree: Path | None = None,
              timeout: float = 300.0, module_dirs: tuple[Path, ...] = (),
              fetch_progress: Progress | None = None, search: DebugSearch | None = None) -> Dump:
    """``path``: a dump file, or a directory holding one dump in any known
    layout (kdebug capture, kdump-tools, RHEL kdump) at any depth.
    ``module_dirs``: where to look for out-of-tree modules' files too.
    The vmlinux is searched as :mod:`kdebug.vmcore.search` says (``search``,
    default: from the environment), downloads reporting to ``fetch_progress``;
    :class:`~kdebug.vmcore.search.DebugInfoMissing` when none can be had."""
    site = locate(Path(path))
    info = identify(site.vmcore)
    original = info.path
    if info.format == "flattened":
        info = identify(reassemble(info.path, timeout=timeout))
    given = GIVEN
    if vmlinux is None and tree is None:
        vmlinux, tree = recorded_kernel(site, info.build_id)
        given = RECORDED
    search = search or DebugSearch.from_env(fetch_progress)
    piece, mods = locate_vmlinux(info, vmlinux=vmlinux, tree=tree, search=search, given_as=given)
    return Dump(info, piece.path, mods, original, site, module_files=find_module_files(site, module_dirs),
                search=search, vmlinux_piece=piece)


def recorded_kernel(site: DumpSite | None, build_id: str | None) -> tuple[Path | None, Path | None]:
    """(vmlinux, build tree) a kdebug capture recorded in capture.json, when
    that vmlinux still has the dump's build-id: a capture of a build tree
    (--tree) is then read without --tree again. (None, None) otherwise."""
    if site is None or site.layout != "kdebug" or not build_id:
        return None, None
    try:
        path = (json.loads((site.vmcore.parent / "capture.json").read_text()).get("kernel") or {}).get("vmlinux")
    except (OSError, ValueError, AttributeError):
        return None, None
    if not _path_text(path) or not Path(path).is_file() or kernel.vmlinux_build_id(Path(path)) != build_id:
        return None, None
    vm = Path(path)
    # A build tree's vmlinux sits beside its .config; the tree holds its modules' debug info too.
    return (None, vm.parent) if (vm.parent / ".config").is_file() else (vm, None)


def _path_text(v) -> bool:
    """Whether a value read from capture.json can name a file (any JSON may be there)."""
    return isinstance(v, str) and bool(v) and "\0" not in v


#: What a module's debug info can be in: the module itself (built with -g, as
#: kbuild builds an external module against a kernel with DEBUG_INFO), or a
#: separate debug file.
MODULE_SUFFIXES = (".ko", ".ko.debug")


def recorded_start(site: DumpSite | None) -> str | None:
    """How the guest of a kdebug capture started ("cold", "warm (state ...)"),
    from its capture.json; None for other dumps and older captures."""
    if site is None or site.layout != "kdebug":
        return None
    try:
        start = json.loads((site.vmcore.parent / "capture.json").read_text()).get("start")
    except (OSError, ValueError, AttributeError):
        return None
    return start if isinstance(start, str) else None


def find_module_files(site: DumpSite | None, module_dirs: tuple[Path, ...] = ()) -> tuple[Path, ...]:
    """Module files for a dump: those a kdebug capture recorded (its copy
    beside the dump, then the path it was added from) and every module file
    under ``module_dirs``. Which of them belongs to the dump is decided by
    build-id when they are loaded, never by name."""
    found: list[Path] = []
    if site is not None and site.layout == "kdebug":
        record = site.vmcore.parent / "capture.json"
        try:
            mods = json.loads(record.read_text()).get("modules") or []
        except (OSError, ValueError, AttributeError):
            mods = []
        for m in mods if isinstance(mods, list) else []:
            if not isinstance(m, dict):
                continue
            # A damaged record names no file (its values may be any JSON).
            cands = [site.vmcore.parent / m["file"]] if _path_text(m.get("file")) else []
            cands += [Path(m["host"])] if _path_text(m.get("host")) else []
            found += [p for p in cands if p.is_file()]
    for d in module_dirs:
        if not d.is_dir():
            raise UsageError(f"--module-dir {d} is not a directory")
        for dirpath, dirnames, filenames in os.walk(d):
            dirnames.sort()
            found += [Path(dirpath) / n for n in sorted(filenames) if n.endswith(MODULE_SUFFIXES)]
    return tuple(dict.fromkeys(found))


def find_vmlinux(info: VmcoreInfo, vmlinux: Path | None = None,
                 tree: Path | None = None) -> tuple[Path, Path | None]:
    """The vmlinux (and module debug dir) built with the dump's build-id."""
    piece, mods = locate_vmlinux(info, vmlinux=vmlinux, tree=tree)
    return piece.path, mods


def locate_vmlinux(info: VmcoreInfo, vmlinux: Path | None = None, tree: Path | None = None,
                   search: DebugSearch | None = None, *, given_as: str = GIVEN,
                   fetch_it: bool = True) -> tuple[Piece, Path | None]:
    """(where the vmlinux with the dump's build-id is, the module debug
    directory): the one given (checked; ``given_as``: who gave it), else as
    ``search`` finds it (``fetch_it`` False: a server's copy is named, not
    downloaded, and the piece has no path)."""
    want = info.build_id
    if vmlinux is not None or tree is not None:
        cand = vmlinux if vmlinux is not None else tree / "vmlinux"
        have = kernel.vmlinux_build_id(cand)
        if want and have != want:
            raise KernelError(f"vmlinux {cand} (build-id {have}) does not match the vmcore "
                              f"(build-id {want})", hint="pass the vmlinux of the kernel that crashed")
        mods = tree if tree is not None else _module_dir(info.release)
        note = "" if want else NO_BUILD_ID.replace("paired by release only", "not checked")
        return Piece("vmlinux", have, cand, given_as, str(cand.parent), note=note), mods
    search = search or DebugSearch.from_env()
    piece = search.vmlinux(want, info.release, fetch_it=fetch_it)
    if piece.path is not None and (piece.path.parent / ".config").is_file():
        return piece, piece.path.parent  # a build tree holds its modules' debug info too
    dirs = search.module_dirs(info.release)
    return piece, dirs[0] if dirs else None


def _module_dir(release: str | None) -> Path | None:
    d = kernel.DEBUG_MODULES / release if release else None
    return d if d is not None and d.is_dir() else None
