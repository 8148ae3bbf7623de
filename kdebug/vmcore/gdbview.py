"""A gdb view of an ELF vmcore whose memory is only physical.

QEMU's dump-guest-memory (without paging) writes PT_LOADs by physical
address with p_vaddr 0, and a copied /proc/vmcore covers only the direct map
and the kernel image: gdb reads a core by virtual address, so module text,
vmalloc'd data and vmap'd stacks would be out of its reach. The view is a new
ELF core with the dump's notes (NT_PRSTATUS per CPU: gdb's threads and their
registers) and its memory, whose PT_LOADs are every present mapping of the
kernel's own page tables (kdebug.decode.pagetable), each pointing at the
physical bytes it maps. It holds all guest memory: written 0600, removed by
the caller after gdb exits.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from kdebug import elf
from kdebug.decode.pagetable import Mapping, kernel_mappings, root_table
from kdebug.errors import VmcoreError
from kdebug.vmcore.info import VmcoreInfo

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
PT_LOAD, PT_NOTE = 1, 4
PF_RWX = 7
PN_XNUM = 0xFFFF


@dataclass(frozen=True)
class ViewStats:
    path: Path
    segments: int  # PT_LOADs written
    mapped_bytes: int  # virtual bytes gdb can read


def _segments(mappings: list[Mapping], loads: list[elf.Segment], data_at: dict[int, int]):
    """(vaddr, paddr, file offset in the view, size) for each piece of a
    mapping that lies in one of the dump's physical segments."""
    for m in mappings:
        for i, s in enumerate(loads):
            lo, hi = max(m.phys, s.paddr), min(m.phys + m.size, s.paddr + s.filesz)
            if lo < hi:
                yield m.virt + (lo - m.phys), lo, data_at[i] + (lo - s.paddr), hi - lo


def write_gdb_view(info: VmcoreInfo, out: Path) -> ViewStats:
    """Write the view of ELF dump ``info`` to ``out`` (created 0600)."""
    if info.format != "elf":
        raise VmcoreError(f"{info.path} is a {info.format} dump; gdb reads only ELF cores")
    with open(info.path, "rb") as f:
        read_at = elf.file_reader(f)
        hdr = elf.parse_elf_header(read_at)
        loads = [s for s in hdr.segments if s.type == elf.PT_LOAD and s.filesz]
        notes = b"".join(read_at(s.offset, s.filesz) for s in hdr.segments if s.type == elf.PT_NOTE)

        def read_phys(pa: int, size: int) -> bytes:
            for s in loads:
                if s.paddr <= pa and pa + size <= s.paddr + s.filesz:
                    return read_at(s.offset + pa - s.paddr, size)
            raise LookupError(pa)

        try:
            root, levels = root_table(info.vmcoreinfo)
        except ValueError as e:
            raise VmcoreError(f"{info.path}: {e}: cannot find the kernel's page tables") from None
        mappings = kernel_mappings(read_phys, root, levels)
        if not mappings:
            raise VmcoreError(f"{info.path}: the kernel's page tables are not in the dump")

        # Layout: headers, notes, then each physical segment's bytes as in the dump.
        first_guess = list(_segments(mappings, loads, dict.fromkeys(range(len(loads)), 0)))
        nphdr = 1 + len(first_guess)
        notes_at = _EHDR.size + nphdr * _PHDR.size
        data_at, pos = {}, _align(notes_at + len(notes))
        for i, s in enumerate(loads):
            data_at[i] = pos
            pos = _align(pos + s.filesz)
        pieces = list(_segments(mappings, loads, data_at))
        ehdr = _EHDR.pack(b"\x7fELF\x02\x01\x01" + bytes(9), 4, 62, 1, 0, _EHDR.size, 0, 0,
                          _EHDR.size, _PHDR.size, min(nphdr, PN_XNUM), 0, 0, 0)
        if nphdr >= PN_XNUM:
            raise VmcoreError(f"{info.path}: {nphdr} mappings are more than an ELF core can list")
        phdrs = [_PHDR.pack(PT_NOTE, 0, notes_at, 0, 0, len(notes), len(notes), 0)]
        phdrs += [_PHDR.pack(PT_LOAD, PF_RWX, off, va, pa, size, size, 0) for va, pa, off, size in pieces]
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.pwrite(fd, ehdr + b"".join(phdrs) + notes, 0)
            for i, s in enumerate(loads):
                _copy(f.fileno(), s.offset, fd, data_at[i], s.filesz)
        finally:
            os.close(fd)
    return ViewStats(out, len(pieces), sum(p[3] for p in pieces))


def _align(n: int, to: int = 4096) -> int:
    return (n + to - 1) // to * to


def _copy(src: int, src_off: int, dst: int, dst_off: int, size: int) -> None:
    """In-kernel copy (copy_file_range), falling back to read/write."""
    done = 0
    while done < size:
        try:
            n = os.copy_file_range(src, dst, size - done, src_off + done, dst_off + done)
        except OSError:
            n = 0
        if n <= 0:
            chunk = os.pread(src, min(size - done, 1 << 24), src_off + done)
            if not chunk:
                raise VmcoreError("the dump ended before its memory segments did")
            n = os.pwrite(dst, chunk, dst_off + done)
        done += n
