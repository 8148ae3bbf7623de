"""What a backtrace frame's fields mean, shared by the gdb walk (kd-bt) and
the drgn one (kdebug.analysis.stack), so both fill a FrameRecord alike:

- the walk stops where user space begins (:func:`ends_walk`);
- a frame's function, offset and size come from the ELF symbol table of the
  file that holds its pc (vmlinux or the module's .ko), looked up as drgn
  does (:class:`SymbolTable`), at the pc of the call itself for a return
  address (pc - 1) and at pc for an interrupted frame (:func:`lookup_pc`).

Pure: no gdb, no drgn.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from pathlib import Path

from kdebug.decode.elfsyms import SHT_SYMTAB, Section, parse_sections

#: x86-64: the kernel lives in the upper half of the address space.
KERNEL_START = 0xFFFF800000000000
SHF_EXECINSTR = 0x4
SHN_UNDEF, SHN_LORESERVE = 0, 0xFF00
STT_SECTION, STT_FILE, STT_TLS = 3, 4, 6
STB_GLOBAL, STB_WEAK, STB_GNU_UNIQUE = 1, 2, 10
ET_REL = 1
_SYM = struct.Struct("<IBBHQQ")


def is_user_address(pc: int) -> bool:
    return pc < KERNEL_START


def ends_walk(index: int, pc: int) -> bool:
    """True where a backtrace stops: at the first user-space pc after frame 0
    (the user side of a syscall or interrupt is not the kernel's to unwind).
    Frame 0 stays whatever its pc: it is where the CPU was (a kernel that
    called a NULL function pointer shows pc 0 there)."""
    return index > 0 and is_user_address(pc)


def lookup_pc(pc: int, interrupted: bool) -> int:
    """The address whose symbol and line a frame shows: a return address
    belongs to the call before it (pc - 1), an interrupted frame's pc to itself."""
    return pc if interrupted else pc - 1


def _precedence(binding: int) -> int:
    return 3 if binding in (STB_GLOBAL, STB_GNU_UNIQUE) else 2 if binding == STB_WEAK else 1


@dataclass(frozen=True)
class ElfSymbol:
    name: str
    address: int  # where it is at run time
    size: int  # st_size
    binding: int  # STB_*
    section: tuple[int, int]  # run-time (start, size) of its section


class SymbolTable:
    """The function symbols of one ELF file at their run-time addresses,
    looked up by address with drgn's rules (libdrgn/elf_symtab.c): of the
    symbols that contain the address, the one starting closest to it, then
    the smaller, then the stronger binding (global, weak, local), then the
    first in the file; failing any, a size-0 symbol before the address that
    no sized symbol covers, in the same section."""

    def __init__(self, symbols: list[ElfSymbol]) -> None:
        order = sorted(range(len(symbols)), key=lambda i: symbols[i].address)  # stable: file order kept
        self.symbols = [symbols[i] for i in order]
        self.starts = [s.address for s in self.symbols]
        self.max_size = max((s.size for s in self.symbols), default=0)
        self.max_end: list[int] = []  # max end of the symbols up to each index
        end = 0
        for s in self.symbols:
            end = max(end, s.address + s.size)
            self.max_end.append(end)

    def lookup(self, addr: int) -> ElfSymbol | None:
        i = bisect.bisect_right(self.starts, addr)
        best = None
        j = i - 1
        while j >= 0 and self.starts[j] >= addr - self.max_size:
            s = self.symbols[j]
            if s.size and addr - s.address < s.size and (best is None or self._better(s, best)):
                best = s
            j -= 1
        if best is not None or i == 0:
            return best
        floor = self.max_end[i - 1]
        j = i - 1
        sizeless = None
        while j >= 0 and self.starts[j] >= floor:
            s = self.symbols[j]
            if not s.size:
                if sizeless is not None and s.address < sizeless.address:
                    break
                if sizeless is None or _precedence(s.binding) >= _precedence(sizeless.binding):
                    sizeless = s  # walking back: an equal one earlier in the file wins
            j -= 1
        if sizeless is None or sizeless.address < floor:
            return None
        start, size = sizeless.section
        return sizeless if start <= addr < start + size else None

    @staticmethod
    def _better(a: ElfSymbol, b: ElfSymbol) -> bool:
        """a over b (walking back through equal starts, so ties go to a: earlier in the file)."""
        if a.address != b.address:
            return a.address > b.address
        if a.size != b.size:
            return a.size < b.size
        return _precedence(a.binding) >= _precedence(b.binding)


def read_symbol_table(path: Path, *, bias: int = 0, section_addresses: dict[str, int] | None = None) -> SymbolTable:
    """The executable-section symbols of an ELF file: a vmlinux (linked
    addresses moved by ``bias``, the KASLR offset) or a relocatable module
    (each symbol at its section's address in ``section_addresses``, the names
    /sys/module/NAME/sections shows; sections not there are not loaded, such
    as .init.text after init, and their symbols are left out)."""
    with open(path, "rb") as f:
        def read_at(off: int, size: int) -> bytes:
            f.seek(off)
            return f.read(size)

        head = read_at(0, 64)
        secs = parse_sections(head, read_at)
        relocatable = struct.unpack_from("<H", head, 16)[0] == ET_REL
        placed = _placed(secs, relocatable, bias, section_addresses or {})
        out: list[ElfSymbol] = []
        for sec in secs:
            if sec.type != SHT_SYMTAB:
                continue
            data = read_at(sec.offset, sec.size)
            strs = read_at(secs[sec.link].offset, secs[sec.link].size)
            for name, info, _other, shndx, value, size in _SYM.iter_unpack(data[:len(data) // 24 * 24]):
                if shndx not in placed or info & 0xF in (STT_SECTION, STT_FILE, STT_TLS):
                    continue
                start, _ = placed[shndx]
                address = start + value if relocatable else value + bias
                text = strs[name:strs.index(b"\0", name)].decode("utf-8", "replace")
                out.append(ElfSymbol(text, address, size, info >> 4, placed[shndx]))
    return SymbolTable(out)


def _placed(secs: list[Section], relocatable: bool, bias: int,
            section_addresses: dict[str, int]) -> dict[int, tuple[int, int]]:
    """{section index: run-time (start, size)} of the executable sections."""
    out = {}
    for i, s in enumerate(secs):
        if not s.flags & SHF_EXECINSTR or i == SHN_UNDEF or i >= SHN_LORESERVE:
            continue
        if relocatable:
            if s.name in section_addresses:
                out[i] = (section_addresses[s.name], s.size)
        elif s.addr:
            out[i] = (s.addr + bias, s.size)
    return out
