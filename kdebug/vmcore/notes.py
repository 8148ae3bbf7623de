"""The ELF notes a dump keeps of the crashed machine (pure: standard library
only): per CPU an NT_PRSTATUS with the registers the crash saved, then
VMCOREINFO.

An ELF dump has them in its PT_NOTE segments. A kdump-compressed dump keeps
/proc/vmcore's note segment as it was, at ``kdump_sub_header.offset_note``
(``size_note`` bytes; makedumpfile diskdump_mod.h, header_version >= 4). The
kernel writes one NT_PRSTATUS per CPU in CPU order
(kernel/crash_core.c crash_prepare_elf64_headers, crash_save_cpu); the
capture kernel's /proc/vmcore drops the empty ones of CPUs that never
stopped.
"""

from __future__ import annotations

import struct
from pathlib import Path

from kdebug import elf
from kdebug.errors import VmcoreError

NT_PRSTATUS = 1
_KDUMP_HEADER_VERSION = 8  # disk_dump_header.header_version (int) after the signature
_KDUMP_BLOCK_SIZE = 428  # disk_dump_header.block_size
_SUB_NOTE = 48  # kdump_sub_header.offset_note, then size_note


def note_bytes(path: Path, fmt: str) -> list[elf.Note]:
    """Every note of the ``fmt`` ("elf" | "kdump") dump at ``path``; a
    damaged header is a VmcoreError naming the field."""
    with open(path, "rb") as f:
        read_at = elf.file_reader(f)
        if fmt == "elf":
            try:
                return list(elf.elf_notes(read_at))
            except (elf.FormatError, struct.error) as e:
                raise VmcoreError(f"{path}: its ELF headers are damaged ({e})") from None
        if fmt != "kdump":
            raise VmcoreError(f"{path}: a {fmt} dump has no notes to read (reassemble it first)")
        head = read_at(0, 464)
        if len(head) < 464:
            raise VmcoreError(f"{path}: its kdump header is cut short ({len(head)} of 464 bytes)")
        (version,) = struct.unpack_from("<i", head, _KDUMP_HEADER_VERSION)
        (block,) = struct.unpack_from("<i", head, _KDUMP_BLOCK_SIZE)
        if version < 4:
            raise VmcoreError(f"{path}: kdump header version {version} keeps no ELF notes (4 or later does)")
        sub = read_at(block + _SUB_NOTE, 16)
        if block <= 0 or len(sub) < 16:
            raise VmcoreError(f"{path}: its kdump header is damaged (block size {block} puts the sub-header "
                              "outside the file)")
        off, size = struct.unpack_from("<qQ", sub)
        data = read_at(off, size)
        if not size or len(data) < size:
            raise VmcoreError(f"{path}: its ELF notes are missing or cut short "
                              f"(kdump_sub_header.offset_note {off}, size_note {size})")
        return list(elf.iter_notes(data))


def prstatus_descs(path: Path, fmt: str) -> list[bytes]:
    """The NT_PRSTATUS descriptors, one per CPU, in CPU order."""
    return [n.desc for n in note_bytes(path, fmt) if n.name == "CORE" and n.type == NT_PRSTATUS]
