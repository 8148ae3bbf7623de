"""Read a vmcore's headers: its format, its VMCOREINFO and whether it is whole
(pure: standard library only). Capture's completeness check and
post-mortem's identification both read dumps through here.

Three formats carry a kernel's memory; each says where its data must end,
so completeness is measured against the file size instead of trusting that
the writer finished:

- ELF (``/proc/vmcore`` copied, QEMU's ``dump-guest-memory``): every
  ``PT_LOAD``'s ``p_offset + p_filesz`` lies within the file.
- kdump-compressed (``makedumpfile -c/-l/-d``, signature ``KDUMP   ``): the
  page descriptors (one per page set in the second bitmap) exist, the data
  they point to lies within the file, and the header's "incomplete" flag is
  clear.
- flattened (``makedumpfile -F``): the (offset, size) records walk exactly to
  the end marker (both -1) at the end of the file. Nothing reads this stream
  until ``makedumpfile -R`` has reassembled it.

Layouts from makedumpfile's diskdump_mod.h and makedumpfile.h
(disk_dump_header, kdump_sub_header, page_desc, makedumpfile_data_header).
VMCOREINFO (kernel/crash_core.c) names the release and, since v5.8, the
build-id that pairs the dump with its vmlinux.
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
FLAT_HEADER_SIZE = 4096
#: disk_dump_header.status bit set when makedumpfile ran out of space
#: (makedumpfile diskdump_mod.h DUMP_DH_COMPRESSED_INCOMPLETE).
DUMP_DH_COMPRESSED_INCOMPLETE = 0x8
_ELF_KINDS = {1: "a relocatable object", 2: "an executable (a vmlinux? pass it as --vmlinux)",
              3: "a shared object"}
_AGAIN = "copy or capture it again"


@dataclass
class VmcoreInfo:
    """What a dump's headers say about it, before any engine opens it."""

    path: Path
    format: str  # "elf" | "kdump" | "flattened" | "unknown"
    size: int
    vmcoreinfo: dict[str, str] = field(default_factory=dict)
    expected_size: int | None = None  # where the dump's data ends
    machine: str = ""
    #: makedumpfile -d of a kdump-compressed dump (kdump_sub_header.dump_level), else None.
    dump_level: int | None = None
    notes: list[str] = field(default_factory=list)
    #: What is wrong, said of the file ("is truncated: ..."); empty when whole.
    problem: str = ""
    hint: str | None = None

    @property
    def complete(self) -> bool:
        return not self.problem

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

    def _bad(self, problem: str, hint: str | None = None) -> VmcoreInfo:
        self.problem, self.hint = problem, hint
        return self

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
    """A dump post-mortem can open; raise :class:`VmcoreError` for anything else."""
    path = resolve(path)
    info = read_dump(path)
    if info.problem:
        raise VmcoreError(f"{path} {info.problem}", hint=info.hint)
    if info.format == "flattened":
        info.notes.append("flattened makedumpfile stream: reassemble with makedumpfile -R")
    elif not info.vmcoreinfo:
        raise VmcoreError(f"{path} has no VMCOREINFO, so the kernel that wrote it cannot be identified",
                          hint="for QEMU dumps boot with -device vmcoreinfo and load qemu_fw_cfg")
    return info


def read_dump(path: Path | str) -> VmcoreInfo:
    """Headers and completeness of any file; what the file holds never raises
    (a dump being written or cut short is an answer, not an error)."""
    path = Path(path)
    size = os.path.getsize(path)
    if size == 0:
        return VmcoreInfo(path, "unknown", 0)._bad("is empty")
    with open(path, "rb") as f:
        head = f.read(16)
        read_at = elf.file_reader(f)
        if head[:4] == elf.ELF_MAGIC:
            return _read_elf(path, size, read_at)
        if head[:8] == KDUMP_SIGNATURE:
            return _read_kdump(path, size, read_at)
        if head[:12] == FLAT_SIGNATURE:
            return _read_flat(path, size, read_at)
    return VmcoreInfo(path, "unknown", size)._bad(
        f"is not a vmcore (neither ELF, kdump-compressed nor a flattened stream; "
        f"it starts with {head[:8].hex()})")


# --- ELF ----------------------------------------------------------------------

def _read_elf(path: Path, size: int, read_at) -> VmcoreInfo:
    info = VmcoreInfo(path, "elf", size)
    try:
        hdr = elf.parse_elf_header(read_at)
    except elf.FormatError as e:
        return info._bad(f"is a damaged ELF file: {e}")
    info.machine = {62: "x86_64", 183: "aarch64", 3: "i386"}.get(hdr.machine, str(hdr.machine))
    if hdr.type != ET_CORE:
        return info._bad(f"is {_ELF_KINDS.get(hdr.type, f'an ELF file of type {hdr.type}')}, not a vmcore")
    comm = None
    try:
        for note in elf.elf_notes(read_at, hdr):
            if note.name == "VMCOREINFO":
                info.vmcoreinfo = parse_vmcoreinfo(note.desc)
            elif note.name == "CORE" and note.type == NT_PRPSINFO and len(note.desc) >= 56:
                # struct elf_prpsinfo: pr_fname[16] sits before pr_psargs[80] at the end.
                comm = note.desc[-96:-80].rstrip(b"\0").decode("latin-1", "replace")
    except (struct.error, ValueError):
        return info._bad("is truncated inside its ELF notes", _AGAIN)
    if not info.vmcoreinfo and comm is not None:
        return info._bad(f"is a user-space core dump (of {comm!r}), not a kernel vmcore")
    loads = [s for s in hdr.segments if s.type == elf.PT_LOAD]
    if not loads:
        return info._bad("has no memory segments (PT_LOAD)")
    info.expected_size = max(s.offset + s.filesz for s in loads)
    if info.truncated:
        return info._bad(f"is truncated: its memory segments end at byte {info.expected_size}, "
                         f"the file has {size}", _AGAIN)
    return info


# --- kdump-compressed ----------------------------------------------------------------

# struct disk_dump_header (makedumpfile diskdump_mod.h), 64-bit layout: signature[8],
# header_version, new_utsname (6 x 65 bytes), pad, timeval, then the ints below.
_DDH_SIZE = 464
_DDH_UTS = 12
_DDH_INTS = struct.Struct("<IiiI")  # status, block_size, sub_hdr_size, bitmap_blocks at 424
# struct kdump_sub_header: dump_level at 8 (header_version >= 1),
# offset_vmcoreinfo/size_vmcoreinfo at 32/40 (header_version >= 3),
# offset_eraseinfo/size_eraseinfo at 64/72 (>= 5).
_PAGE_DESC = struct.Struct("<qIIQ")  # struct page_desc: offset, size, flags, page_flags


def _read_kdump(path: Path, size: int, read_at) -> VmcoreInfo:
    info = VmcoreInfo(path, "kdump", size)
    head = read_at(0, _DDH_SIZE)
    if len(head) < _DDH_SIZE:
        return info._bad("is truncated inside its kdump header", _AGAIN)
    (version,) = struct.unpack_from("<i", head, 8)
    uts = [head[_DDH_UTS + 65 * i: _DDH_UTS + 65 * (i + 1)].split(b"\0")[0].decode("latin-1")
           for i in range(6)]
    info.machine = uts[4]
    status, block, sub_blocks, bitmap_blocks = _DDH_INTS.unpack_from(head, 424)
    if block <= 0 or block > (1 << 20) or block & (block - 1) or sub_blocks < 0:
        return info._bad(f"has a corrupt kdump header (block size {block})")
    sub = read_at(block, 104)
    if version >= 1 and len(sub) >= 12:
        (info.dump_level,) = struct.unpack_from("<i", sub, 8)  # after phys_base
    if version >= 3 and len(sub) >= 48:
        off, length = struct.unpack_from("<qQ", sub, 32)
        if 0 < length < (1 << 20) and off + length <= size:
            info.vmcoreinfo = parse_vmcoreinfo(read_at(off, length))
    if uts[2]:
        info.vmcoreinfo.setdefault("OSRELEASE", uts[2])
    if status & DUMP_DH_COMPRESSED_INCOMPLETE:
        return info._bad("was marked incomplete by makedumpfile (it ran out of space)", _AGAIN)
    bitmaps = block * (1 + sub_blocks)
    half = bitmap_blocks * block // 2
    second = read_at(bitmaps + half, half)  # the second bitmap: pages present in the dump
    if len(second) < half:
        return info._bad(f"is truncated in its page bitmap (the file has {size} bytes)", _AGAIN)
    pages = int.from_bytes(second, "little").bit_count()
    descs = bitmaps + 2 * half
    end = descs + pages * _PAGE_DESC.size
    if end > size:
        info.expected_size = end
        return info._bad(f"is truncated in its page descriptors (they need {end} bytes, "
                         f"the file has {size})", _AGAIN)
    # Every descriptor, not just the last: pages with equal contents (the zero
    # page) share one copy, which may sit anywhere before the end.
    chunk = 43690 * _PAGE_DESC.size  # about 1 MiB of descriptors per read
    for at in range(descs, descs + pages * _PAGE_DESC.size, chunk):
        raw = read_at(at, min(chunk, descs + pages * _PAGE_DESC.size - at))
        for off, length, _flags, _pflags in _PAGE_DESC.iter_unpack(raw):
            end = max(end, off + length)
    if version >= 5 and len(sub) >= 80:
        off, length = struct.unpack_from("<qQ", sub, 64)
        if length:
            end = max(end, off + length)
    info.expected_size = end
    if info.truncated:
        return info._bad(f"is truncated: its page data ends at byte {end}, the file has {size}", _AGAIN)
    return info


# --- flattened ----------------------------------------------------------------

_FLAT_RECORD = struct.Struct(">qq")  # struct makedumpfile_data_header: offset, buf_size


def _read_flat(path: Path, size: int, read_at) -> VmcoreInfo:
    info = VmcoreInfo(path, "flattened", size)
    pos = FLAT_HEADER_SIZE
    while True:
        raw = read_at(pos, _FLAT_RECORD.size)
        if len(raw) < _FLAT_RECORD.size:
            return info._bad(f"stops at byte {size} without the flattened stream's end marker", _AGAIN)
        off, length = _FLAT_RECORD.unpack(raw)
        pos += _FLAT_RECORD.size
        if off == -1 and length == -1:
            info.expected_size = pos
            if pos != size:
                # A disk holds the stream and then whatever was there before.
                return info._bad(f"has {size - pos} stray bytes after the flattened stream's end marker")
            return info
        if off < 0 or length < 0:
            return info._bad(f"has a corrupt flattened record at byte {pos - _FLAT_RECORD.size}")
        pos += length


__all__ = ["VmcoreInfo", "identify", "parse_vmcoreinfo", "read_dump", "resolve"]
