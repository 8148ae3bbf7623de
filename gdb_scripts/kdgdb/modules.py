"""kd-lsmod: loaded modules (``struct module`` on the ``modules`` list)."""

from __future__ import annotations

from kdebug.decode.modules import ModuleLayout, decode_module
from kdebug.decode.structs import Field
from kdebug.format import format_modules

from . import core

M = "struct module"


def _f(path: str) -> Field:
    return Field(core.offsetof(M, path), core.sizeof(M, path))


def module_layout() -> ModuleLayout:
    def build():
        # Since Linux kernel v6.4 ("module: replace module_layout with
        # module_memory") the sizes are in mem[MOD_*]; before, core_layout.
        if core.has_field(M, "core_layout"):
            base, size = _f("core_layout.base"), _f("core_layout.size")
            init = _f("init_layout.size")
        else:
            text = core.constant("MOD_TEXT")
            elem = core.sizeof("struct module_memory")
            off = core.offsetof(M, "mem") + text * elem
            base = Field(off + core.offsetof("struct module_memory", "base"), 8)
            size = Field(off + core.offsetof("struct module_memory", "size"), 4)
            init = None
        return ModuleLayout(
            size=core.sizeof(M), state=_f("state"), list_next=Field(core.offsetof(M, "list"), 8),
            name=_f("name"), core_base=base, core_size=size, init_size=init,
            refcnt=_f("refcnt") if core.has_field(M, "refcnt") else None,
            taints=_f("taints") if core.has_field(M, "taints") else None,
        )
    return core.cached("module_layout", build)


def _state_names() -> dict[int, str]:
    def build():
        names = {}
        for n, short in (("MODULE_STATE_LIVE", "live"), ("MODULE_STATE_COMING", "coming"),
                         ("MODULE_STATE_GOING", "going"), ("MODULE_STATE_UNFORMED", "unformed")):
            try:
                names[core.constant(n)] = short
            except Exception:
                pass
        return names
    return core.cached("module_states", build)


def collect_modules():
    """ModuleRecords of ``struct module``s on the modules list, newest first (as /proc/modules)."""
    if not core.has_symbol("modules"):
        return []  # CONFIG_MODULES=n
    lay = module_layout()
    head = core.symbol_address("modules")
    list_off = lay.list_next.offset
    out = []
    nxt = core.u64(head)
    while nxt != head and len(out) < 100_000:
        addr = nxt - list_off
        rec, nxt = decode_module(core.read(addr, lay.size), addr, lay, _state_names())
        out.append(rec)
    return out


@core.register
class KdLsmod(core.Command):
    """Loaded modules: name, size, references, address, taints.

    Usage: kd-lsmod [--json]"""

    name = "kd-lsmod"

    def arguments(self, p):
        p.add_argument("--json", action="store_true")

    def run(self, a):
        return format_modules(collect_modules(), "json" if a.json else "table")
