"""Loaded modules as ModuleRecords, with the meaning kd-lsmod gives them
(kdebug.decode.modules): what /proc/modules shows."""

from __future__ import annotations

import drgn
from drgn.helpers.linux.module import for_each_module

from kdebug.analysis.debuginfo import layout
from kdebug.decode import modules as decode
from kdebug.model import ModuleRecord
from kdebug.report.model import TaintingModule


def collect_modules(prog: drgn.Program) -> list[ModuleRecord]:
    """The modules /proc/modules lists (``struct module`` on ``modules``), by name."""
    lay = layout(prog, "module", decode.module_layout)
    out = []
    for mod in for_each_module(prog):
        addr = mod.value_()
        raw = decode.decode_module(prog.read(addr, lay.size), addr, lay)
        if decode.listed(raw, lay):
            out.append(decode.module_record(raw, lay, decode.module_holders(raw, lay, prog.read, prog.read_u64)))
    return sorted(out, key=lambda m: m.name)


def collect_tainting_modules(prog: drgn.Program, records: list[ModuleRecord]) -> list[TaintingModule]:
    """The tainting modules of ``records``, with the build-id the dump holds
    for each (its notes) and the file drgn read its debug info from."""
    loaded = {m.name: m for m in prog.modules() if isinstance(m, drgn.RelocatableModule)}
    out = []
    for r in records:
        if not r.taints:
            continue
        m = loaded.get(r.name)
        build_id = m.build_id.hex() if m is not None and m.build_id else ""
        debug = m.debug_file_path if m is not None and m.debug_file_path else ""
        out.append(TaintingModule(r.name, r.taints, build_id, debug))
    return out
