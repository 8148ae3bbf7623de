"""Identify a vmcore and read its VMCOREINFO (pure: standard library only).

Three formats carry a kernel's memory: ELF (``/proc/vmcore`` copied, QEMU's
``dump-guest-memory``), kdump-compressed (``makedumpfile -c/-l``, signature
``KDUMP   ``) and makedumpfile's flattened stream (``-F``), which must be
reassembled with ``makedumpfile -R`` before anything can read it. VMCOREINFO
(kernel/crash_core.c) names the release and, since v5.8, the build-id that
pairs the dump with its vmlinux.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from kdebug import elf
from kdebug.errors import VmcoreError

ET_CORE = 4
NT_PRPSINFO = 3  # a user-space core names its process in this note
KDUMP_SIGNATURE = b"KDUMP   "
FLAT_SIGNATURE = b"makedumpfile"
#: disk_dump_header.status bit set when makedumpfile ran out of space
#: (makedumpfile diskdump_mod.h DUMP_DH_COMPRESSED_INCOMPLETE).
DUMP_DH_COMPRESSED_INCOMPLETE = 0x8
_ELF_KINDS = {1: "a relocatable object", 2: "an executable (a vmlinux? pass it as --vmlinux)",
              3: "a shared object"}


@dataclass
class VmcoreInfo:
    """What a dump's headers say about it, before any engine opens it."""

    path: Path
    format: str  # "elf" | "kdump" | "flattened"
    size: int
    vmcoreinfo: dict[str, str] = field(default_factory=dict)
    expected_size: int | None = None  # where the last page should end
    machine: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def build_id(self) -> str | None:
        return self.vmcoreinfo.get("BUILD-ID")

    @property
    def release(self) -> str | None:
        return self.vmcoreinfo.get("OSRELEASE")

    @property
    def truncated(self) -> bool:
        return self.expected_size is not None and self.size < self.expected_size

    @property
    def crash_time(self) -> int | None:
        """Seconds since the epoch; only kdump's kernel records it (CRASHTIME)."""
        v = self.vmcoreinfo.get("CRASHTIME")
        return int(v) if v and v.isdigit() else None

    def to_dict(self) -> dict:
        return {"path": str(self.path), "format": self.format, "size": self.size,
                "expected_size": self.expected_size, "truncated": self.truncated,
                "build_id": self.build_id, "release": self.release, "machine": self.machine}


def parse_vmcoreinfo(text: bytes | str) -> dict[str, str]:
    """``KEY=VALUE`` lines (``SYMBOL(init_uts_ns)=...`` keys included); bytes may
    carry the note's NUL padding."""
    if isinstance(text, bytes):
        text = text.rstrip(b"\0").decode("latin-1")
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key:
            out[key.strip()] = value.strip()
    return out


def resolve(path: Path | str) -> Path:
    """The vmcore file a user meant: a file, or a capture directory's ``vmcore``."""
    path = Path(path)
    if path.is_dir():
        inner = path / "vmcore"
        if inner.is_file():
            return inner
        raise VmcoreError(f"{path} is a directory without a vmcore file in it")
    if not path.exists():
        raise VmcoreError(f"{path} does not exist")
    if not path.is_file():
        raise VmcoreError(f"{path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise VmcoreError(f"{path} is not readable")
    return path


def identify(path: Path | str) -> VmcoreInfo:
    """Read the dump's headers; raise :class:`VmcoreError` for anything unusable."""
    path = resolve(path)
    size = path.stat().st_size
    if size == 0:
        raise VmcoreError(f"{path} is empty")
    with open(path, "rb") as f:
        head = f.read(16)
        read_at = elf.file_reader(f)
        if head[:4] == elf.ELF_MAGIC:
            info = _identify_elf(path, size, read_at)
        elif head[:8] == KDUMP_SIGNATURE:
            info = _identify_kdump(path, size, read_at)
        elif head[:12] == FLAT_SIGNATURE:
            return VmcoreInfo(path, "flattened", size,
                              notes=["flattened makedumpfile stream: reassemble with makedumpfile -R"])
        else:
            raise VmcoreError(f"{path} is not a vmcore (neither ELF nor kdump-compressed; "
                              f"it starts with {head[:8].hex()})")
    if not info.vmcoreinfo:
        raise VmcoreError(f"{path} has no VMCOREINFO, so the kernel that wrote it cannot be identified",
                          hint="for QEMU dumps boot with -device vmcoreinfo and load qemu_fw_cfg")
    if info.truncated:
        raise VmcoreError(f"{path} is truncated: {info.size} of {info.expected_size} bytes",
                          hint="copy or capture it again")
    return info


# --- ELF ----------------------------------------------------------------------

def _identify_elf(path: Path, size: int, read_at) -> VmcoreInfo:
    try:
        hdr = elf.parse_elf_header(read_at)
    except elf.FormatError as e:
        raise VmcoreError(f"{path} is a damaged ELF file: {e}") from None
    if hdr.type != ET_CORE:
        kind = _ELF_KINDS.get(hdr.type, f"an ELF file of type {hdr.type}")
        raise VmcoreError(f"{path} is {kind}, not a vmcore")
    text, comm = None, None
    for note in elf.elf_notes(read_at, hdr):
        if note.name == "VMCOREINFO":
            text = note.desc.rstrip(b"\0").decode("latin-1")
        elif note.name == "CORE" and note.type == NT_PRPSINFO and len(note.desc) >= 56:
            # struct elf_prpsinfo: pr_fname[16] sits before pr_psargs[80] at the end.
            comm = note.desc[-96:-80].rstrip(b"\0").decode("latin-1", "replace")
    end = max((s.offset + s.filesz for s in hdr.segments if s.type == elf.PT_LOAD), default=None)
    if text is None and comm is not None:
        raise VmcoreError(f"{path} is a user-space core dump (of {comm!r}), not a kernel vmcore")
    info = VmcoreInfo(path, "elf", size, parse_vmcoreinfo(text or ""), end,
                      {62: "x86_64", 183: "aarch64", 3: "i386"}.get(hdr.machine, str(hdr.machine)))
    return info


# --- kdump-compressed ----------------------------------------------------------------

# struct disk_dump_header (makedumpfile diskdump_mod.h), 64-bit layout: signature[8],
# header_version, new_utsname (6 x 65 bytes), pad, timeval, then the ints below.
_DDH_UTS = 12
_DDH_INTS = struct.Struct("<IiiIIIIIIi")  # status .. nr_cpus, at offset 424
# struct kdump_sub_header: offset_vmcoreinfo/size_vmcoreinfo at 32/40 (header_version >= 3),
# offset_eraseinfo/size_eraseinfo at 64/72 (>= 5).
_PAGE_DESC = 24  # struct page_desc: offset (8), size (4), flags (4), page_flags (8)


def _identify_kdump(path: Path, size: int, read_at) -> VmcoreInfo:
    head = read_at(0, 464)
    if len(head) < 464:
        raise VmcoreError(f"{path} is truncated inside its kdump header")
    (version,) = struct.unpack_from("<i", head, 8)
    uts = [head[_DDH_UTS + 65 * i: _DDH_UTS + 65 * (i + 1)].split(b"\0")[0].decode("latin-1")
           for i in range(6)]
    status, block, sub_blocks, bitmap_blocks, *_rest = _DDH_INTS.unpack_from(head, 424)
    if block <= 0 or block > (1 << 20) or sub_blocks < 0:
        raise VmcoreError(f"{path} has a corrupt kdump header (block size {block})")
    sub = read_at(block, 104)
    vmci = {}
    if version >= 3 and len(sub) >= 48:
        off, length = struct.unpack_from("<qQ", sub, 32)
        data = read_at(off, length) if 0 < length < (1 << 20) else b""
        vmci = parse_vmcoreinfo(data.decode("latin-1"))
    vmci.setdefault("OSRELEASE", uts[2])
    info = VmcoreInfo(path, "kdump", size, vmci, machine=uts[4])
    if status & DUMP_DH_COMPRESSED_INCOMPLETE:
        info.notes.append("makedumpfile marked this dump incomplete (ran out of space)")
    info.expected_size = _kdump_end(read_at, block, sub_blocks, bitmap_blocks, sub, version)
    return info


def _kdump_end(read_at, block: int, sub_blocks: int, bitmap_blocks: int, sub: bytes,
               version: int) -> int:
    """Where the file should end: the last page's data, or the erase info after it."""
    bitmaps = block * (1 + sub_blocks)
    second = read_at(bitmaps + bitmap_blocks * block // 2, bitmap_blocks * block // 2)
    pages = int.from_bytes(second, "little").bit_count()
    descs = bitmaps + bitmap_blocks * block
    end = descs + pages * _PAGE_DESC
    if pages:
        last = read_at(descs + (pages - 1) * _PAGE_DESC, _PAGE_DESC)
        if len(last) == _PAGE_DESC:
            off, length = struct.unpack_from("<qI", last, 0)
            end = max(end, off + length)
    if version >= 5 and len(sub) >= 80:
        off, length = struct.unpack_from("<qQ", sub, 64)
        if length:
            end = max(end, off + length)
    return end


__all__ = ["VmcoreInfo", "identify", "parse_vmcoreinfo", "resolve"]
