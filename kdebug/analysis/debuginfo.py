"""kdebug.decode's Debuginfo over drgn's types: the layouts of kdebug.decode
are built from it, so the drgn collectors detect a kernel's features exactly
as the gdb commands do."""

from __future__ import annotations

import drgn

from kdebug.analysis.program import cached
from kdebug.decode.structs import Field, bitfield


class DrgnDebuginfo:
    """Member offsets, sizes and enumerators of ``prog``'s debug info."""

    def __init__(self, prog: drgn.Program) -> None:
        self.prog = prog

    def member(self, type_name: str, path: str) -> Field | None:
        try:
            t = self.prog.type(type_name)
        except LookupError:
            return None
        bits = 0
        m = None
        for part in path.split("."):
            t = t.unaliased()
            if t.kind not in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION) or not t.has_member(part):
                return None
            m = t.member(part)  # through anonymous members, offset from t's start
            bits += m.bit_offset
            t = m.type
        assert m is not None
        if m.bit_field_size:
            return bitfield(0, bits, m.bit_field_size)
        # A flexible array member (attrs[]) has no size: 0, as gdb says.
        return Field(bits // 8, drgn.sizeof(m.type) if m.type.is_complete() else 0)

    def sizeof(self, type_name: str) -> int:
        return drgn.sizeof(self.prog.type(type_name))

    def enumerator(self, name: str) -> int | None:
        try:
            return self.prog.constant(name).value_()
        except LookupError:
            return None


def layout(prog: drgn.Program, key: str, build):
    """A kdebug.decode layout of ``prog``'s kernel, built once per program."""
    return cached(prog, f"kdebug.layout.{key}", lambda: build(DrgnDebuginfo(prog)))
