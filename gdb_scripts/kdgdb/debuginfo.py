"""Types and symbols from gdb's debug info, cached per symbol file: C types,
member offsets, symbol addresses, enumerators, and kdebug.decode's Debuginfo
over them."""

from __future__ import annotations

import gdb

from kdebug.decode.structs import Field, bitfield

from .cache import cached


def lookup_type(name: str) -> gdb.Type:
    """gdb type by C name ("struct task_struct", "unsigned long"), cached."""
    def get():
        try:
            return gdb.lookup_type(name)
        except gdb.error:
            raise gdb.GdbError(f"no type {name} in the symbols") from None
    return cached(("type", name), get)


def ulong(v: gdb.Value) -> int:
    """A pointer or integer value as an unsigned address."""
    return int(v.cast(lookup_type("unsigned long")))


def _member_bits(t: gdb.Type, path: str):
    """(bit offset, field) of a dotted member path, anonymous members included."""
    bits = 0
    f = None
    for part in path.split("."):
        t = t.strip_typedefs()
        if t.code not in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
            return None
        found = _find_field(t, part)
        if found is None:
            return None
        sub, f = found
        bits += sub
        t = f.type
    return bits, f


def _field_path(t: gdb.Type, path: str):
    """(byte offset, field) of a dotted member path, anonymous members included."""
    r = _member_bits(t, path)
    return None if r is None else (r[0] // 8, r[1])


def _find_field(t: gdb.Type, name: str):
    for f in t.fields():
        if f.name == name:
            return f.bitpos, f
        if f.name is None and f.type.strip_typedefs().code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
            inner = _find_field(f.type.strip_typedefs(), name)
            if inner is not None:
                return f.bitpos + inner[0], inner[1]
    return None


def has_field(type_name: str, path: str) -> bool:
    return cached(("has", type_name, path), lambda: _field_path(lookup_type(type_name), path) is not None)


def _member(type_name: str, path: str) -> tuple[int, gdb.Field]:
    """(offset, field) of a member path; one line when there is none."""
    def get():
        r = _field_path(lookup_type(type_name), path)
        if r is None:
            raise gdb.GdbError(f"{type_name} has no member {path}")
        return r
    return cached(("member-at", type_name, path), get)


def offsetof(type_name: str, path: str) -> int:
    return _member(type_name, path)[0]


def field_of(type_name: str, path: str) -> gdb.Field:
    return _member(type_name, path)[1]


def sizeof(type_name: str, path: str | None = None) -> int:
    if path is None:
        return lookup_type(type_name).sizeof
    return field_of(type_name, path).type.sizeof


def symbol_address(name: str) -> int:
    def get():
        sym = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
        if sym is None:
            try:
                return ulong(gdb.parse_and_eval(f"&{name}"))
            except gdb.error:
                raise gdb.GdbError(f"no symbol {name}") from None
        return ulong(sym.value().address)
    return cached(("sym", name), get)


def has_symbol(name: str) -> bool:
    def get():
        try:
            symbol_address(name)
            return True
        except gdb.GdbError:
            return False
    return cached(("hassym", name), get)


def constant(name: str) -> int:
    """An enumerator's value from the debuginfo (PIDTYPE_PID, MODULE_STATE_LIVE)."""
    return cached(("const", name), lambda: int(gdb.parse_and_eval(name)))


class GdbDebuginfo:
    """kdebug.decode's Debuginfo over gdb's types, cached per symbol file: the
    layouts of kdebug.decode are built from it, so gdb detects a kernel's
    features exactly as the drgn collectors do."""

    def member(self, type_name: str, path: str) -> Field | None:
        def get():
            try:
                t = gdb.lookup_type(type_name)
            except gdb.error:
                return None
            r = _member_bits(t, path)
            if r is None:
                return None
            bits, f = r
            if f.bitsize:
                return bitfield(0, bits, f.bitsize)
            return Field(bits // 8, f.type.sizeof)
        return cached(("member", type_name, path), get)

    def sizeof(self, type_name: str) -> int:
        return lookup_type(type_name).sizeof

    def enumerator(self, name: str) -> int | None:
        def get():
            try:
                return int(gdb.parse_and_eval(name))
            except gdb.error:
                return None
        return cached(("enum", name), get)


#: The one instance the layouts are built from.
gdb_debuginfo = GdbDebuginfo()
