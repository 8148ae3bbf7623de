"""kd-lsmod: loaded modules (``struct module`` on the ``modules`` list)."""

from __future__ import annotations

from kdebug.decode.modules import (
    MAX_ENTRIES,
    ModuleLayout,
    RawModule,
    decode_module,
    listed,
    module_holders,
    module_layout,
    module_record,
)
from kdebug.format import format_modules
from kdebug.model import ModuleRecord

from .cache import cached
from .command import Command, register
from .debuginfo import gdb_debuginfo, has_symbol, symbol_address
from .memory import read, u64


def layout() -> ModuleLayout:
    return cached("module_layout", lambda: module_layout(gdb_debuginfo))


def read_module(addr: int) -> RawModule:
    """The ``struct module`` at ``addr``, in one read."""
    lay = layout()
    return decode_module(read(addr, lay.size), addr, lay)


def for_each_module() -> list[RawModule]:
    """``struct module``s on the ``modules`` list, newest first (as /proc/modules)."""
    if not has_symbol("modules"):
        return []  # CONFIG_MODULES=n
    lay = layout()
    head = symbol_address("modules")
    out: list[RawModule] = []
    nxt = u64(head)
    while nxt != head and len(out) < MAX_ENTRIES:
        out.append(read_module(nxt - lay.list_next.offset))
        nxt = out[-1].list_next
    return out


def collect_modules() -> list[ModuleRecord]:
    """ModuleRecords of the modules /proc/modules lists, in its order."""
    lay = layout()
    return [module_record(m, lay, module_holders(m, lay, read, u64))
            for m in for_each_module() if listed(m, lay)]


@register
class KdLsmod(Command):
    """Loaded modules: name, size, references, address, taints.

    Usage: kd-lsmod [--json]"""

    name = "kd-lsmod"

    def arguments(self, p):
        p.add_argument("--json", action="store_true")

    def records(self, a):
        return collect_modules()

    def render(self, mods, a):
        return format_modules(mods, "json" if a.json else "table")
