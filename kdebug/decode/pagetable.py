"""x86-64 kernel page tables, walked from physical memory (pure).

Used to give gdb a virtual view of a dump whose memory segments are only
physical (QEMU's dump-guest-memory without paging): every present mapping of
the kernel half of the address space, coalesced into runs that are
contiguous both virtually and physically. Layout per the Intel SDM vol. 3
(4- and 5-level paging, 1 GiB and 2 MiB pages) and
arch/x86/include/asm/pgtable_types.h (_PAGE_PRESENT, _PAGE_PSE).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

PAGE_PRESENT = 1 << 0
PAGE_PSE = 1 << 7  # a large page at the PUD (1 GiB) or PMD (2 MiB) level
#: Bits 12..51 of an entry: the next table's or the page's physical address.
ADDR_MASK = ((1 << 52) - 1) & ~0xFFF
KERNEL_HALF_4 = 0xFFFF800000000000  # first kernel address with 4-level paging
KERNEL_HALF_5 = 0xFF00000000000000  # with 5-level paging
START_KERNEL_MAP = 0xFFFFFFFF80000000

ReadPhys = Callable[[int, int], bytes]


@dataclass(frozen=True)
class Mapping:
    virt: int
    phys: int
    size: int


def _canonical(va: int, levels: int) -> int:
    bits = 12 + 9 * levels
    return va | (~((1 << bits) - 1) & (2**64 - 1)) if va >> (bits - 1) & 1 else va


def kernel_mappings(read_phys: ReadPhys, root: int, levels: int = 4) -> list[Mapping]:
    """Every present mapping in the kernel half of the page tables whose top
    table is at physical ``root``, coalesced, sorted by virtual address.
    Tables that cannot be read (not in the dump) are skipped."""
    if levels not in (4, 5):
        raise ValueError(f"x86-64 paging has 4 or 5 levels, not {levels}")
    out: list[Mapping] = []
    for va, pa, size in _walk(read_phys, root, levels, 0, levels, first_index=256):
        va = _canonical(va, levels)
        last = out[-1] if out else None
        if last and last.virt + last.size == va and last.phys + last.size == pa:
            out[-1] = Mapping(last.virt, last.phys, last.size + size)
        else:
            out.append(Mapping(va, pa, size))
    return out


def _walk(read_phys: ReadPhys, table: int, level: int, base: int, levels: int,
          first_index: int = 0) -> Iterator[tuple[int, int, int]]:
    try:
        entries = struct.unpack("<512Q", read_phys(table, 4096))
    except (OSError, ValueError, LookupError, struct.error):
        return
    shift = 12 + 9 * (level - 1)
    for i in range(first_index, 512):
        e = entries[i]
        if not e & PAGE_PRESENT:
            continue
        va = base | (i << shift)
        if level == 1 or (level in (2, 3) and e & PAGE_PSE):
            size = 1 << shift
            yield va, e & ADDR_MASK & ~(size - 1), size
        else:
            yield from _walk(read_phys, e & ADDR_MASK, level - 1, va, levels)


def root_table(vmcoreinfo: dict[str, str]) -> tuple[int, int]:
    """(physical address of the kernel's top page table, paging levels) from
    a dump's VMCOREINFO: SYMBOL(init_top_pgt) is a kernel-image address,
    so __pa_symbol applies: pa = va - __START_KERNEL_map + phys_base."""
    try:
        top = int(vmcoreinfo["SYMBOL(init_top_pgt)"], 16)
        phys_base = int(vmcoreinfo["NUMBER(phys_base)"]) & (2**64 - 1)
    except (KeyError, ValueError):
        raise ValueError("VMCOREINFO lacks SYMBOL(init_top_pgt) or NUMBER(phys_base)") from None
    levels = 5 if vmcoreinfo.get("NUMBER(pgtable_l5_enabled)", "0") == "1" else 4
    return (top - START_KERNEL_MAP + phys_base) & (2**64 - 1), levels
