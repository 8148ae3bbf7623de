"""Pure readers for the kernel's binary formats: ELF notes and the bzImage.

The build-id is how kdebug pairs a kernel image, its debug vmlinux and a
vmcore: the vmlinux carries it as an ``NT_GNU_BUILD_ID`` note, the bzImage
carries the same ELF compressed inside it, and every vmcore repeats it in
VMCOREINFO (``BUILD-ID=``, since Linux v5.8, commit 0935288c6e00
"kdump: append kernel build-id string to VMCOREINFO").
"""

from __future__ import annotations

import bz2
import lzma
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
NT_GNU_BUILD_ID = 3
PT_NOTE = 4
PT_LOAD = 1

ReadAt = Callable[[int, int], bytes]


class FormatError(ValueError):
    """Bytes that are not what the caller hoped for (not ELF, not a bzImage...)."""


@dataclass(frozen=True)
class Note:
    name: str
    type: int
    desc: bytes


@dataclass(frozen=True)
class Segment:
    type: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int


@dataclass(frozen=True)
class ElfHeader:
    bits: int
    little: bool
    type: int
    machine: int
    segments: tuple[Segment, ...]

    @property
    def endian(self) -> str:
        return "<" if self.little else ">"


def bytes_reader(data: bytes) -> ReadAt:
    return lambda off, size: data[off : off + size]


def file_reader(f) -> ReadAt:
    """Reads of an open file at any (offset, size) a damaged header may give:
    outside the file (negative, past its end, past 2**63) is b"", and a read
    never asks for more than the file holds (a BufferedReader would allocate
    the whole size first)."""
    end = os.fstat(f.fileno()).st_size

    def read_at(off: int, size: int) -> bytes:
        if off < 0 or size <= 0 or off >= end:
            return b""
        f.seek(off)
        return f.read(min(size, end - off))

    return read_at


def _ident(read_at: ReadAt) -> tuple[bytes, int, str]:
    """(the ELF header's first 64 bytes, 32 or 64, struct byte order)."""
    ident = read_at(0, 64)
    if len(ident) < 52 or ident[:4] != ELF_MAGIC:
        raise FormatError("not an ELF file")
    bits = {1: 32, 2: 64}.get(ident[4])
    if bits is None:
        raise FormatError("bad ELF class")
    return ident, bits, "<" if ident[5] == 1 else ">"


def parse_elf_header(read_at: ReadAt) -> ElfHeader:
    ident, bits, e = _ident(read_at)
    little = e == "<"
    if bits == 64:
        etype, machine = struct.unpack_from(e + "HH", ident, 16)
        (phoff,) = struct.unpack_from(e + "Q", ident, 32)
        phentsize, phnum = struct.unpack_from(e + "HH", ident, 54)
        fmt = e + "IIQQQQQQ"
    else:
        etype, machine = struct.unpack_from(e + "HH", ident, 16)
        (phoff,) = struct.unpack_from(e + "I", ident, 28)
        phentsize, phnum = struct.unpack_from(e + "HH", ident, 42)
        fmt = e + "IIIIIIII"
    if phnum > 65535 or phentsize < struct.calcsize(fmt) and phnum:
        raise FormatError("corrupt ELF program headers")
    table = read_at(phoff, phentsize * phnum)
    if len(table) < phentsize * phnum:
        raise FormatError("ELF program headers are truncated")
    segs = []
    for i in range(phnum):
        raw = struct.unpack_from(fmt, table, i * phentsize)
        if bits == 64:
            ptype, _flags, off, vaddr, paddr, filesz, memsz, _align = raw
        else:
            ptype, off, vaddr, paddr, filesz, memsz, _flags, _align = raw
        segs.append(Segment(ptype, off, vaddr, paddr, filesz, memsz))
    return ElfHeader(bits, little, etype, machine, tuple(segs))


def iter_notes(data: bytes, endian: str = "<") -> Iterator[Note]:
    """Yield the notes of one PT_NOTE segment's bytes (4-byte aligned)."""
    off = 0
    while off + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(endian + "III", data, off)
        off += 12
        name = data[off : off + namesz].rstrip(b"\0").decode("latin-1")
        off += (namesz + 3) & ~3
        desc = data[off : off + descsz]
        off += (descsz + 3) & ~3
        if len(desc) < descsz:
            return
        yield Note(name, ntype, desc)


def elf_notes(read_at: ReadAt, hdr: ElfHeader | None = None) -> Iterator[Note]:
    hdr = hdr or parse_elf_header(read_at)
    for seg in hdr.segments:
        if seg.type == PT_NOTE and seg.filesz < (64 << 20):
            yield from iter_notes(read_at(seg.offset, seg.filesz), hdr.endian)


def elf_build_id(read_at: ReadAt) -> str | None:
    for note in elf_notes(read_at):
        if note.name == "GNU" and note.type == NT_GNU_BUILD_ID:
            return note.desc.hex()
    return None


def file_build_id(path: Path) -> str | None:
    with open(path, "rb") as f:
        return elf_build_id(file_reader(f))


def is_elf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == ELF_MAGIC


# --- sections and kernel modules (ET_REL: no program headers) ---------------

ET_REL = 1
SHT_NOTE = 7


@dataclass(frozen=True)
class SectionHeader:
    name: str
    type: int
    offset: int
    size: int


def elf_sections(read_at: ReadAt) -> list[SectionHeader]:
    """Section headers of an ELF file (32 or 64 bit, either byte order)."""
    ident, bits, e = _ident(read_at)
    if bits == 64:
        (shoff,) = struct.unpack_from(e + "Q", ident, 40)
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", ident, 58)
        fmt = e + "IIQQQQIIQQ"
    else:
        (shoff,) = struct.unpack_from(e + "I", ident, 32)
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", ident, 46)
        fmt = e + "IIIIIIIIII"
    if not shoff or not shnum:
        return []
    if shentsize < struct.calcsize(fmt) or shstrndx >= shnum:
        raise FormatError("corrupt ELF section headers")
    table = read_at(shoff, shentsize * shnum)
    if len(table) < shentsize * shnum:
        raise FormatError("ELF section headers are truncated")
    raw = [struct.unpack_from(fmt, table, i * shentsize) for i in range(shnum)]
    names = read_at(raw[shstrndx][4], raw[shstrndx][5])
    out = []
    for r in raw:
        end = names.find(b"\0", r[0])
        out.append(SectionHeader(names[r[0]:end if end >= 0 else None].decode("latin-1"), r[1], r[4], r[5]))
    return out


@dataclass(frozen=True)
class ModuleFile:
    """What a kernel module file says about itself: the name and version
    magic from ``.modinfo`` (what insmod checks against the running kernel),
    and the GNU build-id the loaded module keeps in its notes
    (/sys/module/NAME/notes), by which debuggers pair the two."""

    name: str
    build_id: str | None
    vermagic: str
    depends: tuple[str, ...]


def modinfo(data: bytes) -> dict[str, str]:
    """``.modinfo``'s NUL-separated key=value strings (the first of each key)."""
    out: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            out.setdefault(key.decode("latin-1"), value.decode("utf-8", "replace"))
    return out


def read_module(read_at: ReadAt) -> ModuleFile:
    """A ``.ko``'s identity; FormatError for an ELF that is not a kernel module."""
    head = read_at(0, 18)
    if head[:4] != ELF_MAGIC or len(head) < 18:
        raise FormatError("not an ELF file")
    (etype,) = struct.unpack_from("<H" if head[5] == 1 else ">H", head, 16)
    sections = elf_sections(read_at)
    info = next((s for s in sections if s.name == ".modinfo"), None)
    if etype != ET_REL or info is None:
        raise FormatError("not a kernel module (no .modinfo section)")
    fields = modinfo(read_at(info.offset, info.size))
    build_id = None
    for s in sections:
        if s.type == SHT_NOTE and s.size < (1 << 20):
            for note in iter_notes(read_at(s.offset, s.size), "<" if head[5] == 1 else ">"):
                if note.name == "GNU" and note.type == NT_GNU_BUILD_ID:
                    build_id = note.desc.hex()
    return ModuleFile(name=fields.get("name", ""), build_id=build_id, vermagic=fields.get("vermagic", ""),
                      depends=tuple(d for d in fields.get("depends", "").split(",") if d))


def file_module(path: Path) -> ModuleFile:
    with open(path, "rb") as f:
        return read_module(file_reader(f))


# --- bzImage -------------------------------------------------------------

@dataclass(frozen=True)
class BzImage:
    protocol: tuple[int, int]
    release: str  # first word of the kernel_version string
    version_string: str
    payload_offset: int  # absolute file offset of the compressed vmlinux
    payload_length: int
    compression: str


_MAGICS: list[tuple[bytes, str]] = [
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x89LZO", "lzo"),
]


def parse_bzimage(head: bytes) -> BzImage:
    """Parse an x86 boot-protocol header (Documentation/arch/x86/boot.rst).

    ``head`` must hold the setup sectors and the start of the payload (the
    first 64 KiB are plenty for the header fields).
    """
    if len(head) < 0x250 or head[0x202:0x206] != b"HdrS":
        raise FormatError("not an x86 bzImage (no HdrS boot header)")
    setup_sects = head[0x1F1] or 4
    (version,) = struct.unpack_from("<H", head, 0x206)
    (kver_ptr,) = struct.unpack_from("<H", head, 0x20E)
    vs = ""
    if kver_ptr:
        start = kver_ptr + 0x200
        end = head.find(b"\0", start, start + 512)
        vs = head[start:end].decode("latin-1", "replace") if end > 0 else ""
    if version < 0x208:
        raise FormatError(f"boot protocol {version >> 8}.{version & 0xFF} is too old to locate the payload")
    payload_off, payload_len = struct.unpack_from("<II", head, 0x248)
    abs_off = (setup_sects + 1) * 512 + payload_off
    comp = "unknown"
    magic = head[abs_off : abs_off + 8] if abs_off + 8 <= len(head) else b""
    for m, name in _MAGICS:
        if magic.startswith(m):
            comp = name
            break
    return BzImage(
        protocol=(version >> 8, version & 0xFF),
        release=vs.split(" ", 1)[0] if vs else "",
        version_string=vs,
        payload_offset=abs_off,
        payload_length=payload_len,
        compression=comp,
    )


def _lz4_legacy(data: bytes) -> bytes:
    """The kernel's LZ4 is the legacy frame: magic, then (u32 size, block)*."""
    import lz4.block  # a compiled helper, not an adapter: fine in the core

    out = bytearray()
    off = 4
    while off + 4 <= len(data):
        (size,) = struct.unpack_from("<I", data, off)
        if size == 0x184C2102:  # a concatenated stream starts again
            off += 4
            continue
        if size == 0 or off + 4 + size > len(data):
            break  # the build appends the uncompressed size: the end
        out += lz4.block.decompress(data[off + 4 : off + 4 + size], uncompressed_size=8 << 20)
        off += 4 + size
    return bytes(out)


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def _gzip(data: bytes) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    return d.decompress(data)


_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": _gzip,
    "xz": lambda d: lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(d),
    "lzma": lambda d: lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(d),
    "bzip2": lambda d: bz2.BZ2Decompressor().decompress(d),
    "lz4": _lz4_legacy,
    "zstd": _zstd,
}


def bzimage_vmlinux(data: bytes) -> bytes:
    """Return the ELF vmlinux compressed inside a bzImage's bytes."""
    bz = parse_bzimage(data[:65536])
    fn = _DECOMPRESS.get(bz.compression)
    if fn is None:
        raise FormatError(f"cannot decompress a {bz.compression} kernel payload")
    payload = data[bz.payload_offset : bz.payload_offset + bz.payload_length]
    try:
        elf = fn(payload)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error, RuntimeError) as e:
        raise FormatError(f"corrupt {bz.compression} payload: {e}") from None
    if elf[:4] != ELF_MAGIC:
        raise FormatError("the bzImage payload is not an ELF vmlinux")
    return elf


def bzimage_build_id(data: bytes) -> str | None:
    return elf_build_id(bytes_reader(bzimage_vmlinux(data)))


__all__ = [
    "BzImage", "ElfHeader", "FormatError", "ModuleFile", "Note", "SectionHeader", "Segment", "bytes_reader",
    "bzimage_build_id", "bzimage_vmlinux", "elf_build_id", "elf_notes", "elf_sections", "file_build_id", "file_module",
    "file_reader", "is_elf", "iter_notes", "modinfo", "parse_bzimage", "parse_elf_header", "read_module",
]
