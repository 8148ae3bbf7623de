"""Loaded modules as ModuleRecords, with their taint letters."""

from __future__ import annotations

import drgn
from drgn.helpers.linux.list import list_for_each_entry
from drgn.helpers.linux.module import for_each_module, module_taints

from kdebug.model import ModuleRecord


def _core(mod: drgn.Object) -> tuple[int, int]:
    """(base, size) of the module's core text and data."""
    # Since Linux kernel commit ac3b43283923 ("module: replace module_layout
    # with module_memory") (in v6.4) the layout is split into mem[] regions.
    try:
        mems = mod.mem
    except AttributeError:
        return mod.core_layout.base.value_(), mod.core_layout.size.value_()
    return mems[0].base.value_(), sum(mems[i].size.value_() for i in range(len(mems)))


def collect_modules(prog: drgn.Program) -> list[ModuleRecord]:
    out = []
    for mod in for_each_module(prog):
        base, size = _core(mod)
        try:
            users = [u.source.name.string_().decode() for u in
                     list_for_each_entry("struct module_use", mod.source_list.address_of_(), "source_list")]
        except (LookupError, drgn.FaultError):
            users = []
        taints = module_taints(mod)
        state = mod.state.format_(type_name=False)
        out.append(ModuleRecord(name=mod.name.string_().decode(), size=size,
                                refcount=mod.refcnt.counter.value_(), address=base,
                                state=state.removeprefix("MODULE_STATE_").lower(), taints=taints,
                                out_of_tree="O" in taints, used_by=sorted(users)))
    return sorted(out, key=lambda m: m.name)
