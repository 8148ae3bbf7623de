"""Which kernel boots after the crash to save the dump.

The capture kernel need not be the crashed one: it only reads /proc/vmcore
and writes it to the dump port. The crashed Debian cloud kernel is a 14 MB
bzImage with hundreds of initcalls, hashed by ``kexec -s -p`` at load and by
purgatory at the crash, then decompressed and booted under TCG; a tinyconfig
build of `kdebug kernel build` is ~1.8 MB and boots in a fraction of it.

``auto`` takes a suitable tree `kdebug kernel build` has cached (suitability
read from its .config, never from its version), the one with the fastest
decompressor, then the smallest; else the crashed kernel. Setup builds one for
this (launch/kconfig/capture.config: LZ4). The pure part (:func:`missing_options`) takes a config; the finders
read the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdebug.errors import UsageError
from kdebug.kconfig import KConfig, parse_kconfig
from kdebug.kernel import Kernel, image_info
from kdebug.paths import cache_dir

#: Built in (=y), since the capture initramfs loads no modules into a kernel
#: that is not the crashed one: relocatable into the crashkernel= region,
#: /proc/vmcore, kdebug's shell /init from a gzip cpio with devtmpfs, its
#: markers on the 8250 console, and the virtio-serial dump port.
NEEDED = ("64BIT", "RELOCATABLE", "CRASH_DUMP", "PROC_VMCORE", "PROC_FS", "SYSFS", "DEVTMPFS",
          "BLK_DEV_INITRD", "RD_GZIP", "BINFMT_ELF", "BINFMT_SCRIPT", "PRINTK", "TTY",
          "SERIAL_8250_CONSOLE", "PCI", "VIRTIO_PCI", "VIRTIO_CONSOLE")
#: ``--via disk``: the capture hook mounts an ext4 image on a virtio disk.
NEEDED_DISK = ("BLOCK", "VIRTIO_BLK", "EXT4_FS")
CHOICES = ("auto", "crashed")
#: Fastest decompression first (the kernel's KERNEL_* Kconfig help). Under TCG
#: it outweighs size: the LZ4 build of the debug tree, 2.9 MB against XZ's
#: 1.9 MB, measured capture-boot 1.57 s against 2.17 s (medians of 3).
DECOMPRESSORS = ("LZ4", "LZO", "ZSTD", "GZIP", "XZ", "LZMA", "BZIP2")


@dataclass(frozen=True)
class CaptureKernel:
    """The image ``kexec -p`` loads; ``source`` is "crashed" or "tree"."""

    image: Path
    release: str
    source: str
    reason: str
    tree: Path | None = None
    compression: str | None = None  # the bzImage's, from CONFIG_KERNEL_*

    @property
    def separate(self) -> bool:
        return self.source != "crashed"

    def to_dict(self) -> dict:
        return {"source": self.source, "release": self.release, "image": str(self.image),
                "size": self.image.stat().st_size if self.image.is_file() else None,
                "tree": str(self.tree) if self.tree else None, "compression": self.compression,
                "reason": self.reason}


def missing_options(config: KConfig, via: str = "serial") -> list[str]:
    """The options a capture kernel needs built in that ``config`` lacks."""
    need = NEEDED + (NEEDED_DISK if via == "disk" else ())
    return [f"CONFIG_{o}" for o in need if not config.builtin(o)]


def cached_trees() -> list[Path]:
    """Every finished tree `kdebug kernel build` has in the cache."""
    out = []
    for done in sorted(cache_dir("kernels").glob("*/.kdebug-built")):
        tree = Path(done.read_text().strip())
        if (tree / "arch/x86/boot/bzImage").is_file() and (tree / ".config").is_file():
            out.append(tree)
    return out


def _tree_candidate(tree: Path, via: str) -> tuple[CaptureKernel | None, str]:
    config = parse_kconfig((tree / ".config").read_text(), str(tree / ".config"))
    missing = missing_options(config, via)
    if missing:
        return None, f"{tree}: no {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}"
    image = tree / "arch/x86/boot/bzImage"
    rel = tree / "include/config/kernel.release"
    release = rel.read_text().strip() if rel.is_file() else (image_info(image).release or "?")
    size = image.stat().st_size
    comp = next((d for d in DECOMPRESSORS if config.builtin(f"KERNEL_{d}")), None)
    return CaptureKernel(image, release, "tree", f"built tree, {size / 1e6:.1f} MB {comp or ''} bzImage "
                         "with kdump and virtio-serial built in", tree, comp), ""


def choose_capture_kernel(crashed: Kernel, choice: str = "auto", via: str = "serial",
                          trees: list[Path] | None = None) -> CaptureKernel:
    """``choice``: "auto", "crashed", or a build tree's directory."""
    same = CaptureKernel(crashed.image, crashed.release, "crashed", "the crashed kernel itself")
    if choice == "crashed":
        return same
    if choice != "auto":
        tree = Path(choice)
        if not (tree / "arch/x86/boot/bzImage").is_file() or not (tree / ".config").is_file():
            raise UsageError(f"--capture-kernel {choice}: not a built kernel tree (bzImage and .config)",
                             hint=f"one of {', '.join(CHOICES)}, or a tree from `kdebug kernel build`")
        found, why = _tree_candidate(tree, via)
        if found is None:
            raise UsageError(f"--capture-kernel {why}", hint="use --capture-kernel crashed")
        return found
    fits = [c for c in (_tree_candidate(t, via)[0] for t in (cached_trees() if trees is None else trees))
            if c is not None and c.image.resolve() != crashed.image.resolve()]
    if not fits:
        return CaptureKernel(crashed.image, crashed.release, "crashed",
                             "no suitable capture kernel built (kdebug kernel build): the crashed kernel")
    # Then the smallest image: least to hash at load and in purgatory.
    rank = {d: i for i, d in enumerate(DECOMPRESSORS)}
    return min(fits, key=lambda c: (rank.get(c.compression or "", len(rank)), c.image.stat().st_size))
