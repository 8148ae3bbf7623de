"""Is a dump complete? Read its VMCOREINFO (pure).

A dump that stopped arriving half-way must never look like a good one. Each
format says where its data should end, so completeness is checked against
the file size instead of trusting that the writer finished:

- ELF (``/proc/vmcore`` copied, QEMU ``dump-guest-memory``): every
  ``PT_LOAD``'s ``p_offset + p_filesz`` lies within the file.
- kdump-compressed (``makedumpfile -c/-l/-d``, signature ``KDUMP   ``): the
  page descriptors (one per page set in the second bitmap) exist and the
  data they point to lies within the file; the header's "incomplete" flag is
  clear.
- flattened (``makedumpfile -F``): the stream of (offset, size) records walks
  exactly to the end marker (both fields -1) at the end of the file.

Layouts from makedumpfile's diskdump_mod.h and makedumpfile.h
(disk_dump_header, kdump_sub_header, page_desc, makedumpfile_data_header).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from kdebug import elf

# One reader of the formats' signatures and of VMCOREINFO, shared with postmortem.
from kdebug.vmcore import (
    DUMP_DH_COMPRESSED_INCOMPLETE,
    FLAT_SIGNATURE,
    KDUMP_SIGNATURE,
    parse_vmcoreinfo,
)

FLAT_HEADER_SIZE = 4096
FLAT_END = -1
_PAGE_DESC = struct.Struct("<qIIQ")  # offset, size, flags, page_flags


@dataclass
class DumpCheck:
    format: str  # "elf", "kdump", "flattened" or "unknown"
    size: int
    complete: bool
    reason: str = ""  # why it is not complete (or not readable)
    expected_size: int | None = None
    vmcoreinfo: dict[str, str] = field(default_factory=dict)

    @property
    def build_id(self) -> str | None:
        return self.vmcoreinfo.get("BUILD-ID")

    @property
    def release(self) -> str | None:
        return self.vmcoreinfo.get("OSRELEASE")


def check_dump(path: Path) -> DumpCheck:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(16)
        f.seek(0)
        if head[:4] == elf.ELF_MAGIC:
            return _check_elf(f, size)
        if head[:8] == KDUMP_SIGNATURE:
            return _check_kdump(f, size)
        if head[:12] == FLAT_SIGNATURE:
            return _check_flat(f, size)
    why = "empty file" if size == 0 else "not an ELF, kdump-compressed or flattened dump"
    return DumpCheck("unknown", size, False, why)


def _check_elf(f, size: int) -> DumpCheck:
    read_at = elf.file_reader(f)
    try:
        hdr = elf.parse_elf_header(read_at)
    except elf.FormatError as e:
        return DumpCheck("elf", size, False, str(e))
    info: dict[str, str] = {}
    try:
        for note in elf.elf_notes(read_at, hdr):
            if note.name == "VMCOREINFO":
                info = parse_vmcoreinfo(note.desc)
    except (struct.error, ValueError):
        return DumpCheck("elf", size, False, "ELF notes are truncated")
    loads = [s for s in hdr.segments if s.type == elf.PT_LOAD]
    end = max((s.offset + s.filesz for s in loads), default=0)
    if not loads:
        return DumpCheck("elf", size, False, "no PT_LOAD segments", end, info)
    if end > size:
        return DumpCheck("elf", size, False,
                         f"truncated: memory segments end at byte {end}, the file has {size}", end, info)
    return DumpCheck("elf", size, True, "", end, info)


def _check_kdump(f, size: int) -> DumpCheck:
    head = f.read(464)
    if len(head) < 464:
        return DumpCheck("kdump", size, False, "header truncated")
    (version,) = struct.unpack_from("<i", head, 8)
    status, block_size, sub_hdr_size, bitmap_blocks, max_mapnr = struct.unpack_from("<IiiII", head, 424)
    if block_size <= 0 or block_size & (block_size - 1) or sub_hdr_size < 0:
        return DumpCheck("kdump", size, False, "corrupt disk_dump_header")
    f.seek(block_size)
    sub = f.read(104)
    info: dict[str, str] = {}
    if len(sub) >= 48:
        off_info, size_info = struct.unpack_from("<qQ", sub, 32)
        if 0 < size_info < (1 << 20) and off_info + size_info <= size:
            f.seek(off_info)
            info = parse_vmcoreinfo(f.read(size_info))
    if version >= 6 and len(sub) >= 104:
        (max_mapnr,) = struct.unpack_from("<Q", sub, 96)
    if status & DUMP_DH_COMPRESSED_INCOMPLETE:
        return DumpCheck("kdump", size, False, "makedumpfile marked the dump incomplete", None, info)
    bitmap_off = (1 + sub_hdr_size) * block_size
    half = bitmap_blocks * block_size // 2
    f.seek(bitmap_off + half)  # the second bitmap: pages present in the dump
    bitmap = f.read(half)
    if len(bitmap) < half:
        return DumpCheck("kdump", size, False, f"truncated in the page bitmap (file has {size} bytes)",
                         None, info)
    pages = int.from_bytes(bitmap, "little").bit_count()
    desc_off = bitmap_off + 2 * half
    desc_end = desc_off + pages * _PAGE_DESC.size
    if desc_end > size:
        return DumpCheck("kdump", size, False,
                         f"truncated in the page descriptors (need {desc_end} bytes, file has {size})",
                         desc_end, info)
    f.seek(desc_off)
    end = desc_end
    for off, length, _flags, _pflags in _PAGE_DESC.iter_unpack(f.read(pages * _PAGE_DESC.size)):
        end = max(end, off + length)
    if end > size:
        return DumpCheck("kdump", size, False,
                         f"truncated: page data ends at byte {end}, the file has {size}", end, info)
    return DumpCheck("kdump", size, True, "", end, info)


def _check_flat(f, size: int) -> DumpCheck:
    pos = FLAT_HEADER_SIZE
    rec = struct.Struct(">qq")
    while True:
        f.seek(pos)
        raw = f.read(rec.size)
        if len(raw) < rec.size:
            return DumpCheck("flattened", size, False,
                             f"the stream stops at byte {size} without its end marker")
        off, length = rec.unpack(raw)
        if off == FLAT_END and length == FLAT_END:
            pos += rec.size
            if pos != size:
                # A disk holds the stream and then whatever was there: say where it ends.
                return DumpCheck("flattened", size, False, f"{size - pos} stray bytes after the end marker",
                                 pos)
            return DumpCheck("flattened", size, True, "", pos)
        if off < 0 or length < 0:
            return DumpCheck("flattened", size, False, f"corrupt record at byte {pos}")
        pos += rec.size + length
