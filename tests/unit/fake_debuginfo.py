"""A kdebug.decode Debuginfo from a table, for unit tests of layout builders."""

from __future__ import annotations

from kdebug.decode.structs import Field


class FakeDebuginfo:
    """``types``: {"struct x": {"member.path": (offset, size)}}; ``sizes``:
    {"struct x": sizeof}; ``enums``: {"NAME": value}."""

    def __init__(self, types: dict, sizes: dict | None = None, enums: dict | None = None) -> None:
        self.types, self.sizes, self.enums = types, sizes or {}, enums or {}

    def member(self, type_name: str, path: str) -> Field | None:
        m = self.types.get(type_name, {}).get(path)
        return Field(*m) if m else None

    def sizeof(self, type_name: str) -> int:
        return self.sizes[type_name]

    def enumerator(self, name: str) -> int | None:
        return self.enums.get(name)
