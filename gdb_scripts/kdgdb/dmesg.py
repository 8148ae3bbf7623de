"""kd-dmesg: the printk ring buffer in a few bulk reads."""

from __future__ import annotations

import gdb

from kdebug.decode.printk import PrbLayout, PrbRings, decode_records, tail
from kdebug.decode.structs import Field
from kdebug.format import format_dmesg

from .cache import cached
from .command import Command, register
from .debuginfo import field_of, has_field, has_symbol, offsetof, sizeof, symbol_address
from .memory import read, u64

RB = "struct printk_ringbuffer"
DESC = "struct prb_desc"
INFO = "struct printk_info"


def _f(t: str, path: str) -> Field:
    return Field(offsetof(t, path), sizeof(t, path))


def prb_layout() -> PrbLayout:
    def build():
        lvl = field_of(INFO, "level")
        lvl_byte = offsetof(INFO, "level")
        return PrbLayout(
            desc_size=sizeof(DESC), state_var=_f(DESC, "state_var"),
            text_begin=_f(DESC, "text_blk_lpos.begin"), text_next=_f(DESC, "text_blk_lpos.next"),
            info_size=sizeof(INFO), seq=_f(INFO, "seq"), ts_nsec=_f(INFO, "ts_nsec"),
            text_len=_f(INFO, "text_len"), facility=_f(INFO, "facility"),
            level=Field(lvl_byte, 1, lvl.bitpos - lvl_byte * 8, lvl.bitsize),
            caller_id=_f(INFO, "caller_id") if has_field(INFO, "caller_id") else None,
        )
    return cached("prb_layout", build)


def _slots(base: int, elem: int, first: int, n: int, count: int) -> dict[int, bytes]:
    """Slots first..first+n-1 (mod count) of an array, in at most two reads."""
    out = {}
    chunks = [(first, min(n, count - first))]
    if first + n > count:
        chunks.append((0, first + n - count))
    for start, k in chunks:
        raw = read(base + start * elem, k * elem)
        for i in range(k):
            out[start + i] = raw[i * elem:(i + 1) * elem]
    return out


def collect_printk():
    """PrintkRecords of the live log (``struct printk_ringbuffer *prb``)."""
    if not has_symbol("prb"):
        raise gdb.GdbError("this kernel has no lockless printk ring buffer (prb, v5.10+)")
    lay = prb_layout()
    rb = u64(symbol_address("prb"))
    raw = read(rb, sizeof(RB))

    def g(path):
        return _f(RB, path).get(raw)

    rings = PrbRings(count_bits=g("desc_ring.count_bits"), text_size_bits=g("text_data_ring.size_bits"),
                     head_id=g("desc_ring.head_id.counter"), tail_id=g("desc_ring.tail_id.counter"))
    ids = rings.ids()
    first, n = ids[0] & (rings.count - 1), len(ids)
    descs = _slots(g("desc_ring.descs"), lay.desc_size, first, n, rings.count)
    infos = _slots(g("desc_ring.infos"), lay.info_size, first, n, rings.count)
    text = read(g("text_data_ring.data"), 1 << rings.text_size_bits)
    return decode_records(rings, lay, descs.__getitem__, infos.__getitem__, text)


@register
class KdDmesg(Command):
    """The kernel log from the printk ring buffer.

    Usage: kd-dmesg [--tail N] [--level MAX] [--levels] [--json]"""

    name = "kd-dmesg"

    def arguments(self, p):
        p.add_argument("--tail", "-n", type=int, help="only the last N records")
        p.add_argument("--level", "-l", type=int, help="only records of this level or more urgent (0-7)")
        p.add_argument("--levels", action="store_true", help="prefix each line with <level>")
        p.add_argument("--json", action="store_true")

    def records(self, a):
        recs = collect_printk()
        if a.level is not None:
            recs = [r for r in recs if r.level <= a.level]
        return tail(recs, a.tail)

    def render(self, recs, a):
        return format_dmesg(recs, "json" if a.json else "table", levels=a.levels)
