"""Sections and symbols of a (64-bit, little-endian) vmlinux, read without gdb.

`kdebug attach` needs a few link-time addresses (to compute the KASLR offset)
and the section table (to load symbols with per-section addresses) before
gdb starts; reading them here keeps gdb from loading the 600 MB file twice.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

SHT_SYMTAB = 2
SHF_ALLOC = 0x2
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
#: Up to this many names are searched for; more are found in one walk of the symbols.
SEARCH_NAMES = 8


class ElfSymsError(ValueError):
    """Not a 64-bit little-endian ELF with sections and a symbol table."""


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int = 0
    entsize: int = 0

    @property
    def alloc(self) -> bool:
        return bool(self.flags & SHF_ALLOC)


def parse_sections(head: bytes, read_at) -> list[Section]:
    """Section headers of the ELF whose first 64 bytes are ``head``."""
    if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        raise ElfSymsError("not a 64-bit little-endian ELF")
    (shoff,) = struct.unpack_from("<Q", head, 40)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", head, 58)
    if not shoff or shentsize != _SHDR.size:
        raise ElfSymsError("ELF has no section headers")
    table = read_at(shoff, shentsize * shnum)
    raw = [_SHDR.unpack_from(table, i * shentsize) for i in range(shnum)]
    strtab = read_at(raw[shstrndx][4], raw[shstrndx][5])
    out = []
    for name, typ, flags, addr, off, size, link, _info, _align, entsize in raw:
        end = strtab.find(b"\0", name)
        out.append(Section(strtab[name:end].decode(), typ, flags, addr, off, size, link, entsize))
    return out


def lookup(sections: list[Section], read_at, names) -> dict[str, int]:
    """Values of the named symbols (the first definition of each).

    A few names are found without walking every symbol: each place the name
    sits in the string table (the linker shares suffixes, so inside longer
    names too), then the symbol entries whose name field holds that offset
    (a byte search, kept at entry boundaries only): 20-40 ms a name where a
    walk of a distro vmlinux's symbols takes 0.4-1 s whatever it looks for."""
    want = list(dict.fromkeys(names))
    if len(want) > SEARCH_NAMES:
        return _walk(sections, read_at, want)
    found: dict[str, int] = {}
    for data, strs in _symtabs(sections, read_at):
        for name in want:
            if name not in found and name:
                hit = _first_definition(data, strs, name.encode())
                if hit is not None:
                    found[name] = hit
        if len(found) == len(want):
            break
    return found


def _symtabs(sections: list[Section], read_at):
    """(symbol entries, their string table) of each SHT_SYMTAB section."""
    for sec in sections:
        if sec.type == SHT_SYMTAB:
            yield read_at(sec.offset, sec.size), read_at(sections[sec.link].offset, sections[sec.link].size)


def _walk(sections: list[Section], read_at, names) -> dict[str, int]:
    want = {n.encode() for n in names}
    found: dict[str, int] = {}
    for data, strs in _symtabs(sections, read_at):
        for i in range(0, len(data) - _SYM.size + 1, _SYM.size):
            name, _info, _other, shndx, value, _size = _SYM.unpack_from(data, i)
            if not shndx or not name:
                continue
            end = strs.find(b"\0", name)
            s = strs[name:end]
            if s in want and s.decode() not in found:
                found[s.decode()] = value
                if len(found) == len(want):
                    return found
    return found


def _first_definition(data: bytes, strs: bytes, name: bytes) -> int | None:
    best: tuple[int, int] | None = None  # (entry offset, value)
    needle = name + b"\0"
    at = strs.find(needle, 1)
    while at >= 0:
        key = struct.pack("<I", at)
        pos = data.find(key)
        while pos >= 0 and (best is None or pos < best[0]):
            if pos % _SYM.size == 0:
                _name, _info, _other, shndx, value, _size = _SYM.unpack_from(data, pos)
                if shndx:
                    best = (pos, value)
                    break
            pos = data.find(key, pos + 1)
        at = strs.find(needle, at + 1)
    return best[1] if best else None


def read_vmlinux(path: Path, names) -> tuple[list[Section], dict[str, int]]:
    """(sections, {symbol: link-time value}) of ``path``."""
    with open(path, "rb") as f:
        def read_at(off: int, size: int) -> bytes:
            f.seek(off)
            return f.read(size)

        secs = parse_sections(read_at(0, 64), read_at)
        return secs, lookup(secs, read_at, names)
