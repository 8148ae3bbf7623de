"""Decoding kernel structures from raw little-endian bytes with offsets taken
from the debuginfo at run time (pure: no gdb here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    """A member: byte offset, size, and for bitfields bit position and width."""

    offset: int
    size: int
    bitpos: int = 0
    bits: int = 0

    def get(self, buf: bytes, base: int = 0) -> int:
        v = int.from_bytes(buf[base + self.offset: base + self.offset + self.size], "little")
        if self.bits:
            v = v >> self.bitpos & ((1 << self.bits) - 1)
        return v

    def get_signed(self, buf: bytes, base: int = 0) -> int:
        v = self.get(buf, base)
        top = 1 << (8 * self.size - 1)
        return v - (top << 1) if v & top else v

    def cstr(self, buf: bytes, base: int = 0) -> str:
        raw = buf[base + self.offset: base + self.offset + self.size]
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    @property
    def end(self) -> int:
        return self.offset + self.size


def span(fields) -> tuple[int, int]:
    """(start, length) of the smallest read covering every field."""
    fs = [f for f in fields if f is not None]
    start = min(f.offset for f in fs)
    return start, max(f.end for f in fs) - start
