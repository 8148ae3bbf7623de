"""Kernel memory in bulk: from QEMU's guest-RAM file when `kd-memory` set one
and the range is linear RAM, else over the gdbstub."""

from __future__ import annotations

import os

import gdb

from kdebug.decode.physmap import DEFAULT_PAGE_OFFSET, PhysMap

from . import cache
from .debuginfo import has_symbol, symbol_address

_ram: dict = {"fd": None, "path": None, "base": 0, "size": None, "hits": 0, "misses": 0}


def use_ram_file(path: str | None, base: int = 0, size: int | None = None) -> None:
    """Read linear kernel memory from guest RAM on the host instead of the
    gdbstub: QEMU's RAM file, or its /proc/PID/mem where guest-physical 0 is
    at ``base`` (``size`` bytes of linear RAM)."""
    if _ram["fd"] is not None:
        os.close(_ram["fd"])
    _ram.update(fd=None, path=None, base=0, size=None, hits=0, misses=0)
    cache.forget("physmap")
    cache.forget_stop()
    if path:
        _ram["fd"] = os.open(path, os.O_RDONLY)
        _ram.update(path=path, base=base, size=size)


def ram_status() -> dict:
    return dict(_ram)


def _physmap():
    def build():
        def u64_stub(name):
            a = symbol_address(name)
            return int.from_bytes(gdb.selected_inferior().read_memory(a, 8).tobytes(), "little")

        page_offset = u64_stub("page_offset_base") if has_symbol("page_offset_base") else DEFAULT_PAGE_OFFSET
        return PhysMap(page_offset=page_offset, phys_base=u64_stub("phys_base"),
                       image_start=symbol_address("_text"), image_end=symbol_address("_end"),
                       ram_bytes=_ram["size"] or os.fstat(_ram["fd"]).st_size)
    return cache.cached("physmap", build)


def read(addr: int, size: int) -> bytes:
    """``size`` bytes of kernel memory at ``addr``."""
    if _ram["fd"] is not None:
        off = _physmap().offset(addr, size)
        if off is not None:
            data = os.pread(_ram["fd"], size, _ram["base"] + off)
            if len(data) == size:
                _ram["hits"] += 1
                return data
        _ram["misses"] += 1
    try:
        return gdb.selected_inferior().read_memory(addr, size).tobytes()
    except gdb.MemoryError:
        raise gdb.GdbError(f"cannot read {size} bytes at {addr:#x}") from None


def u64(addr: int) -> int:
    return int.from_bytes(read(addr, 8), "little")


def c_string(addr: int, limit: int = 4096) -> str:
    raw = read(addr, limit)
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
