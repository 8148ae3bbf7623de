"""Decoding kernel structures from raw little-endian bytes with offsets taken
from the debuginfo at run time (pure: no gdb here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kdebug.errors import KernelError


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


class Debuginfo(Protocol):
    """What a layout builder asks an engine's debug info (gdb's types inside
    gdb, drgn's on the host), by C name. Layouts are built once from it, in
    kdebug.decode, so every engine detects a kernel's features the same way."""

    def member(self, type_name: str, path: str) -> Field | None:
        """``path`` (dotted, through anonymous members: "thread_info.cpu") in
        ``type_name`` ("struct task_struct"), or None when the kernel has no
        such member."""
        ...

    def sizeof(self, type_name: str) -> int:
        ...

    def enumerator(self, name: str) -> int | None:
        """An enumerator's value (MOD_TEXT), or None when the kernel has none."""
        ...


def require(di: Debuginfo, type_name: str, path: str) -> Field:
    """A member every supported kernel has; a one-line error otherwise."""
    f = di.member(type_name, path)
    if f is None:
        raise KernelError(f"{type_name} has no member {path}: this kernel's layout is not supported")
    return f


def pointer_at(f: Field) -> Field:
    """The 8 bytes at a member's start (a list_head's next, a pointer)."""
    return Field(f.offset, 8)


def bitfield(byte_offset: int, bit_offset: int, bits: int) -> Field:
    """A bitfield member as Field: ``bit_offset`` counts from ``byte_offset``."""
    start = byte_offset + bit_offset // 8
    pos = bit_offset % 8
    return Field(start, (pos + bits + 7) // 8, pos, bits)
