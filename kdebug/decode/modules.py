"""``struct module`` from raw bytes: the pure half of kd-lsmod."""

from __future__ import annotations

from dataclasses import dataclass

from kdebug.decode.structs import Field
from kdebug.model import ModuleRecord

MODULE_REF_BASE = 1  # kernel/module: refcnt starts at 1 for a live module

# include/linux/panic.h TAINT_* bits as /proc/modules prints them (module taints only).
TAINT_FLAGS = {12: "O", 13: "E", 1: "F", 15: "X", 16: "T", 10: "C"}


@dataclass(frozen=True)
class ModuleLayout:
    size: int
    state: Field
    list_next: Field
    name: Field
    core_base: Field
    core_size: Field
    init_size: Field | None = None
    refcnt: Field | None = None
    taints: Field | None = None


def decode_module(buf: bytes, address: int, layout: ModuleLayout,
                  state_names: dict[int, str]) -> tuple[ModuleRecord, int]:
    """(record, address of the next list entry's ``list`` member)."""
    size = layout.core_size.get(buf) + (layout.init_size.get(buf) if layout.init_size else 0)
    ref = layout.refcnt.get_signed(buf) - MODULE_REF_BASE if layout.refcnt else 0
    taint_bits = layout.taints.get(buf) if layout.taints else 0
    taints = "".join(c for bit, c in sorted(TAINT_FLAGS.items()) if taint_bits >> bit & 1)
    rec = ModuleRecord(name=layout.name.cstr(buf), size=size, refcount=ref,
                       address=layout.core_base.get(buf),
                       state=state_names.get(layout.state.get(buf), str(layout.state.get(buf))),
                       taints=taints, out_of_tree=bool(taint_bits >> 12 & 1))
    return rec, layout.list_next.get(buf)
