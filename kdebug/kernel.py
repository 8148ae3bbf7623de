"""Find a kernel and its matching debug vmlinux, and read what it can do.

Three sources: the newest Debian kernel in /boot whose ``-dbg`` vmlinux is
installed (the default), an explicit ``--kernel BZIMAGE [--vmlinux FILE]``, or
a build tree (``--tree DIR``). Image and vmlinux are paired by build-id.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kdebug import elf
from kdebug.errors import KernelError, UsageError
from kdebug.kconfig import KConfig, ikconfig_from_image, parse_kconfig
from kdebug.paths import cache_dir

BOOT = Path(os.environ.get("KDEBUG_BOOT_DIR", "/boot"))
DEBUG_BOOT = Path(os.environ.get("KDEBUG_DEBUG_DIR", "/usr/lib/debug/boot"))
MODULES = Path("/lib/modules")
DEBUG_MODULES = Path("/usr/lib/debug/lib/modules")


@dataclass
class Kernel:
    image: Path  # what QEMU boots (bzImage)
    vmlinux: Path | None  # ELF with DWARF, for gdb/crash/drgn
    release: str
    build_id: str | None
    config: KConfig
    source: str  # "distro", "explicit" or "tree"
    tree: Path | None = None
    modules_dir: Path | None = None  # /lib/modules/<release> or the tree
    module_debug_dir: Path | None = None
    gdb_scripts: Path | None = None  # scripts/gdb/vmlinux-gdb.py of a tree
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "image": str(self.image),
            "vmlinux": str(self.vmlinux) if self.vmlinux else None,
            "release": self.release,
            "build_id": self.build_id,
            "source": self.source,
            "tree": str(self.tree) if self.tree else None,
            "modules_dir": str(self.modules_dir) if self.modules_dir else None,
            "module_debug_dir": str(self.module_debug_dir) if self.module_debug_dir else None,
            "gdb_scripts": str(self.gdb_scripts) if self.gdb_scripts else None,
        }


# --- build-ids, cached: decompressing an image costs 0.3-2 s -----------------

def _cache_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _cached(path: Path, kind: str, compute) -> str | None:
    try:
        cache = cache_dir() / "build-ids.json"
    except OSError:  # no cache can be made (read-only, full): compute each time
        return compute()
    try:
        table = json.loads(cache.read_text())
    except (OSError, ValueError):
        table = {}
    key = f"{kind}:{_cache_key(path)}"
    if key in table:
        return table[key]
    value = compute()
    table[key] = value
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(table))
        tmp.replace(cache)
    except OSError:  # a full or read-only cache only costs the next lookup
        tmp.unlink(missing_ok=True)
    return value


def image_info(path: Path) -> elf.BzImage:
    """Check that ``path`` is a bootable bzImage; explain what it is if not."""
    _check_file(path, "kernel")
    with open(path, "rb") as f:
        head = f.read(65536)
    if head[:4] == elf.ELF_MAGIC:
        raise UsageError(
            f"{path} is an uncompressed ELF vmlinux, not a bootable image: QEMU would fail with "
            "'linux kernel too old to load a ram disk'",
            hint="pass the bzImage (arch/x86/boot/bzImage or /boot/vmlinuz-RELEASE) as --kernel "
            "and this file as --vmlinux",
        )
    try:
        return elf.parse_bzimage(head)
    except elf.FormatError as e:
        raise UsageError(f"{path} is not an x86 kernel image: {e}") from None


def image_build_id(path: Path) -> str | None:
    def compute():
        try:
            return elf.bzimage_build_id(path.read_bytes())
        except elf.FormatError:
            return None

    return _cached(path, "image", compute)


def vmlinux_build_id(path: Path) -> str | None:
    _check_file(path, "vmlinux")
    if not elf.is_elf(path):
        raise UsageError(f"{path} is not an ELF vmlinux (for a bzImage use --kernel)")

    def compute():
        try:
            return elf.file_build_id(path)
        except elf.FormatError:
            return None

    return _cached(path, "elf", compute)


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise UsageError(f"{what} file {path} does not exist")
    if not path.is_file():
        raise UsageError(f"{what} {path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{what} file {path} is not readable")


def pair(image: Path, vmlinux: Path | None) -> str | None:
    """Return the shared build-id, or refuse a vmlinux from another build."""
    iid = image_build_id(image)
    if vmlinux is None:
        return iid
    vid = vmlinux_build_id(vmlinux)
    if iid and vid and iid != vid:
        raise KernelError(
            f"vmlinux {vmlinux} (build-id {vid}) does not match kernel {image} (build-id {iid})",
            hint="use the vmlinux from the same build",
        )
    return iid or vid


# --- configuration ----------------------------------------------------------

def read_config(candidates: list[Path], image: Path) -> KConfig:
    for p in candidates:
        if p.is_file():
            return parse_kconfig(p.read_text(errors="replace"), str(p))
    try:
        text = ikconfig_from_image(elf.bzimage_vmlinux(image.read_bytes()))
    except elf.FormatError:
        text = None
    if text:
        return parse_kconfig(text, f"{image} (IKCONFIG)")
    return KConfig({}, "")


# --- the three sources -------------------------------------------------------

_VER = re.compile(r"(\d+|\D+)")


def _version_key(release: str):
    return [(0, int(p)) if p.isdigit() else (1, p) for p in _VER.findall(release)]


def distro_kernels() -> list[tuple[str, Path, Path | None]]:
    """(release, image, debug vmlinux or None) for each /boot/vmlinuz-*, newest first."""
    found = []
    for img in BOOT.glob("vmlinuz-*"):
        rel = img.name.removeprefix("vmlinuz-")
        dbg = DEBUG_BOOT / f"vmlinux-{rel}"
        found.append((rel, img, dbg if dbg.is_file() else None))
    return sorted(found, key=lambda t: _version_key(t[0]), reverse=True)


#: Kernel metapackages of the distribution itself (not backports): their
#: kernel is the one its crash, makedumpfile and kexec-tools were released with.
METAPACKAGES = ("linux-image-cloud-amd64", "linux-image-amd64")


def metapackage_release() -> str | None:
    """The release the installed distribution kernel metapackage depends on."""
    for meta in METAPACKAGES:
        try:
            r = subprocess.run(["dpkg-query", "-W", "-f", "${Status}|${Depends}", meta],
                               capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        status, _, depends = r.stdout.partition("|")
        if r.returncode != 0 or "install ok installed" not in status:
            continue
        m = re.search(r"linux-image-(\S+?)(?:-unsigned)?(?:\s|,|$)", depends)
        if m:
            return m.group(1)
    return None


def select_release(releases: list[str], wanted: str | None, preferred: str | None) -> str | None:
    """Which of ``releases`` (newest first, each with its debug vmlinux) to boot:
    ``wanted`` exactly or as a prefix ("6.12"), else the distribution's own
    (``preferred``), else the newest."""
    if wanted:
        exact = [r for r in releases if r == wanted]
        # A prefix ends at a version component: "6.1" is not "6.12...".
        prefixed = [r for r in releases if r.startswith(wanted) and not r[len(wanted):len(wanted) + 1].isdigit()]
        return (exact or prefixed or [None])[0]
    if preferred in releases:
        return preferred
    return releases[0] if releases else None


def default_kernel(release: str | None = None) -> Kernel:
    """The kernel to boot when none is named: ``release`` (--release or
    KDEBUG_KERNEL), else the distribution's own generation, else the newest
    /boot kernel whose debug vmlinux is installed."""
    release = release or os.environ.get("KDEBUG_KERNEL") or None
    kernels = distro_kernels()
    usable = {rel: (img, dbg) for rel, img, dbg in kernels if dbg is not None}
    pick = select_release(list(usable), release, metapackage_release())
    if pick is not None:
        return _distro(pick, *usable[pick])
    if release:
        have = ", ".join(usable) or "none"
        raise KernelError(f"no installed kernel with its debug vmlinux matches release {release!r} (installed: {have})",
                          hint="see `kdebug doctor`; install linux-image-RELEASE and its -dbg package")
    if kernels:
        rels = ", ".join(k[0] for k in kernels)
        raise KernelError(
            f"no kernel in {BOOT} has its debug vmlinux installed (found {rels})",
            hint=f"install linux-image-{kernels[0][0]}-dbg, or run scripts/setup.sh",
        )
    raise KernelError(f"no kernel found in {BOOT}", hint="run scripts/setup.sh, or pass --kernel/--tree")


def _distro(release: str, image: Path, vmlinux: Path | None, source: str = "distro") -> Kernel:
    image_info(image)
    bid = pair(image, vmlinux)
    mods = MODULES / release
    mdbg = DEBUG_MODULES / release
    return Kernel(
        image=image,
        vmlinux=vmlinux,
        release=release,
        build_id=bid,
        config=read_config([BOOT / f"config-{release}"], image),
        source=source,
        modules_dir=mods if mods.is_dir() else None,
        module_debug_dir=mdbg if mdbg.is_dir() else None,
    )


def explicit_kernel(image: Path, vmlinux: Path | None) -> Kernel:
    info = image_info(image)
    rel = info.release
    if vmlinux is None:
        guess = DEBUG_BOOT / f"vmlinux-{rel}"
        vmlinux = guess if rel and guess.is_file() else None
    k = _distro(rel, image, vmlinux, source="explicit")
    if vmlinux is None:
        k.notes.append("no vmlinux: gdb and post-mortem analysis need --vmlinux")
    return k


def tree_kernel(tree: Path) -> Kernel:
    if not tree.is_dir():
        raise UsageError(f"build tree {tree} is not a directory")
    image = tree / "arch/x86/boot/bzImage"
    vmlinux = tree / "vmlinux"
    if not image.is_file():
        raise KernelError(
            f"{tree} has no arch/x86/boot/bzImage", hint="build it with `make bzImage` (or kdebug kernel build)"
        )
    info = image_info(image)
    relfile = tree / "include/config/kernel.release"
    release = relfile.read_text().strip() if relfile.is_file() else info.release
    vm = vmlinux if vmlinux.is_file() else None
    bid = pair(image, vm)
    gdbpy = tree / "vmlinux-gdb.py"
    if not gdbpy.exists():
        gdbpy = tree / "scripts/gdb/vmlinux-gdb.py"
    k = Kernel(
        image=image,
        vmlinux=vm,
        release=release,
        build_id=bid,
        config=read_config([tree / ".config"], image),
        source="tree",
        tree=tree,
        modules_dir=tree if (tree / "modules.order").exists() else None,
        module_debug_dir=tree,
        gdb_scripts=gdbpy if (tree / "scripts/gdb/linux").is_dir() and gdbpy.exists() else None,
    )
    if vm is None:
        k.notes.append(f"{tree} has no vmlinux: gdb and post-mortem analysis will not work")
    return k


def find_kernel(kernel: Path | None = None, vmlinux: Path | None = None,
                tree: Path | None = None, release: str | None = None) -> Kernel:
    if release is not None and (tree is not None or kernel is not None):
        raise UsageError("--release picks an installed kernel: it cannot be combined with --kernel/--tree")
    if tree is not None:
        if kernel is not None or vmlinux is not None:
            raise UsageError("--tree cannot be combined with --kernel/--vmlinux")
        return tree_kernel(tree)
    if kernel is not None:
        return explicit_kernel(kernel, vmlinux)
    if vmlinux is not None:
        raise UsageError("--vmlinux needs --kernel (the bootable image it belongs to)")
    return default_kernel(release)
