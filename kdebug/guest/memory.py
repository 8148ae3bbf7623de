"""A running guest's physical memory, read from the host without the guest's
help: QEMU's flat memory tree (`info mtree -f`) says which guest-physical
ranges are RAM and where each lies in the RAM block; the block is a mapping in
QEMU's address space, read through /proc/PID/mem (root, or ptrace access to
QEMU). Works while the guest runs and while gdb holds it stopped."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from kdebug.errors import GuestError

# "  0000000000100000-000000003fffffff (prio 0, ram): pc.ram @0000000000100000"
_MTREE = re.compile(r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio -?\d+, ram\): (\S+)(?: @([0-9a-f]+))?", re.M)


@dataclass(frozen=True)
class RamRange:
    phys: int  # guest-physical start
    size: int
    offset: int  # where it starts in the RAM block


@dataclass(frozen=True)
class RamBlock:
    name: str
    used: int
    host: int | None = None  # where QEMU mapped it (the HVA column, QEMU >= 8.1)


def main_ram_block(info_ramblock: str) -> RamBlock:
    """The guest's main RAM block from `info ramblock`: the largest one
    (pc.ram, or a memory backend's id). Columns are found by their header,
    since QEMU versions differ in which they print."""
    lines = [ln for ln in info_ramblock.splitlines() if ln.strip()]
    header = next((ln.split() for ln in lines if ln.split()[:2] == ["Block", "Name"]), None)
    if header is None:
        raise GuestError("QEMU's `info ramblock` has no header line")
    cols = ["Name", *header[2:]]  # "Block Name" is one column
    blocks = []
    for ln in lines:
        f = ln.split()
        if f[:2] == ["Block", "Name"]:
            continue
        # PSize is "4 KiB": two words.
        row = dict(zip(cols, [f[0], f"{f[1]} {f[2]}", *f[3:]], strict=False))
        try:
            blocks.append(RamBlock(row["Name"], int(row["Used"], 16),
                                   int(row["HVA"], 16) if "HVA" in row else None))
        except (KeyError, ValueError):
            continue
    if not blocks:
        raise GuestError("QEMU's `info ramblock` lists no RAM block")
    return max(blocks, key=lambda b: b.used)


def ram_ranges(info_mtree_flat: str, block: str) -> list[RamRange]:
    """Guest-physical RAM ranges backed by ``block``, from `info mtree -f`
    (which repeats each address space: the ranges are deduplicated)."""
    seen: dict[int, RamRange] = {}
    for m in _MTREE.finditer(info_mtree_flat):
        if m.group(3) != block:
            continue
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        offset = int(m.group(4), 16) if m.group(4) else 0
        seen.setdefault(start, RamRange(start, end - start + 1, offset))
    return sorted(seen.values(), key=lambda r: r.phys)


def mappings_of_size(maps: str, size: int) -> list[int]:
    """Start addresses of writable mappings in /proc/PID/maps text of exactly ``size`` bytes."""
    out = []
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) < 2 or "w" not in fields[1]:
            continue
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if hi - lo == size:
            out.append(lo)
    return out


class GuestMemory:
    """Reads guest-physical memory of QEMU process ``pid`` (RAM only)."""

    def __init__(self, pid: int, ranges: list[RamRange], host_base: int) -> None:
        self.pid = pid
        self.ranges = ranges
        self.host_base = host_base
        try:
            self._fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
        except OSError as e:
            raise GuestError(f"cannot read QEMU's memory (/proc/{pid}/mem): {e.strerror}",
                             hint="run as root or as QEMU's user with ptrace access "
                                  "(kernel.yama.ptrace_scope=0)") from None

    def read(self, phys: int, size: int) -> bytes:
        for r in self.ranges:
            if r.phys <= phys and phys + size <= r.phys + r.size:
                data = os.pread(self._fd, size, self.host_base + r.offset + (phys - r.phys))
                if len(data) != size:
                    raise GuestError(f"short read of guest memory at {phys:#x}")
                return data
        raise GuestError(f"guest-physical {phys:#x}+{size:#x} is not RAM")

    def close(self) -> None:
        os.close(self._fd)


def open_guest_memory(qmp, pid: int, probe: tuple[int, bytes]) -> GuestMemory:
    """Guest RAM of QEMU ``pid`` (``qmp``: its open :class:`kdebug.guest.qmp.Qmp`).
    ``probe`` is (guest-physical address, bytes known to be there): the RAM
    block's host mapping is the one of the block's size that holds them."""
    def hmp(line: str) -> str:
        return qmp.cmd("human-monitor-command", **{"command-line": line})

    block = main_ram_block(hmp("info ramblock"))
    ranges = ram_ranges(hmp("info mtree -f"), block.name)
    if not ranges:
        raise GuestError(f"QEMU's memory tree maps no RAM from block {block.name}")
    if block.host is not None:
        candidates = [block.host]
    else:
        try:
            candidates = mappings_of_size(Path(f"/proc/{pid}/maps").read_text(), block.used)
        except OSError as e:
            raise GuestError(f"cannot read QEMU's mappings: {e.strerror}") from None
    phys, want = probe
    for base in candidates:
        mem = GuestMemory(pid, ranges, base)
        try:
            if mem.read(phys, len(want)) == want:
                return mem
        except (GuestError, OSError):
            pass
        mem.close()
    raise GuestError(f"found no mapping of QEMU's {block.name} ({block.used >> 20} MiB) holding the guest's memory",
                     hint="is this QEMU the guest's? (`kdebug sessions`)")
