"""The lockless printk ring buffer (``struct printk_ringbuffer``, v5.10+)
decoded from raw bytes: the pure half of kd-dmesg.

Since Linux kernel commit 896fbe20b4e2 ("printk: use the lockless
ringbuffer") (in v5.10) the log is three rings: descriptors (state + the
logical positions of the text block), infos (seq, timestamp, length, level,
caller) and text data blocks, each ``unsigned long id`` followed by the text.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdebug.decode.structs import Debuginfo, Field, require
from kdebug.model import PrintkRecord

# kernel/printk/printk_ringbuffer.h: the state lives in the top two bits of
# state_var, the descriptor id in the rest.
DESC_FLAGS_SHIFT = 62
DESC_ID_MASK = (1 << DESC_FLAGS_SHIFT) - 1
DESC_COMMITTED, DESC_FINALIZED = 1, 2
ID_SIZE = 8  # sizeof(unsigned long), the id at the head of each data block


@dataclass(frozen=True)
class PrbLayout:
    desc_size: int
    state_var: Field
    text_begin: Field
    text_next: Field
    info_size: int
    seq: Field
    ts_nsec: Field
    text_len: Field
    facility: Field
    level: Field  # a 3-bit field
    caller_id: Field | None = None


@dataclass(frozen=True)
class PrbRings:
    """What the kernel's ``prb`` points to: ring sizes and the live id range."""

    count_bits: int
    text_size_bits: int
    head_id: int
    tail_id: int

    @property
    def count(self) -> int:
        return 1 << self.count_bits

    def ids(self) -> list[int]:
        """Descriptor ids from tail to head (ids wrap at DESC_ID_MASK)."""
        n = (self.head_id - self.tail_id) & DESC_ID_MASK
        if n >= self.count:  # corrupt or racing: never more than one ring
            n = self.count - 1
        return [(self.tail_id + i) & DESC_ID_MASK for i in range(n + 1)]


def caller_name(caller_id: int) -> str:
    """printk's caller: 'T<pid>' for a task, 'C<cpu>' in interrupt context."""
    return f"C{caller_id & 0x7FFFFFFF}" if caller_id & 0x80000000 else f"T{caller_id}"


def block_text(text: bytes, size_bits: int, begin: int, nxt: int, length: int) -> bytes:
    """Text of the data block at logical positions [begin, next), with the
    kernel's rules (get_data()): a block that would cross the end of the ring
    is stored at its start instead."""
    if begin & 1:  # FAILED_LPOS / NO_LPOS: a record without text
        return b""
    size = 1 << size_bits
    if begin >> size_bits == nxt >> size_bits and begin < nxt:
        start, blk = begin & (size - 1), nxt - begin
    elif (begin + size) >> size_bits == nxt >> size_bits:
        start, blk = 0, nxt & (size - 1)
    else:
        return b""
    length = max(0, min(length, blk - ID_SIZE))
    return text[start + ID_SIZE:start + ID_SIZE + length]


def decode_records(rings: PrbRings, layout: PrbLayout, desc_at, info_at, text: bytes) -> list[PrintkRecord]:
    """Records of the ring, oldest first. ``desc_at(i)`` / ``info_at(i)``
    return the raw bytes of descriptor / info slot i; ``text`` is the data ring."""
    out = []
    mask = rings.count - 1
    for did in rings.ids():
        slot = did & mask
        d = desc_at(slot)
        sv = layout.state_var.get(d)
        if sv & DESC_ID_MASK != did or sv >> DESC_FLAGS_SHIFT not in (DESC_COMMITTED, DESC_FINALIZED):
            continue
        info = info_at(slot)
        raw = block_text(text, rings.text_size_bits, layout.text_begin.get(d), layout.text_next.get(d),
                         layout.text_len.get(info))
        out.append(PrintkRecord(
            seq=layout.seq.get(info),
            timestamp_ns=layout.ts_nsec.get(info),
            level=layout.level.get(info),
            text=raw.decode("utf-8", "replace"),
            facility=layout.facility.get(info),
            caller=caller_name(layout.caller_id.get(info)) if layout.caller_id else "",
        ))
    return out


def tail(records: list[PrintkRecord], n: int | None) -> list[PrintkRecord]:
    return records[-n:] if n else records


# -- from any engine's layout facts -------------------------------------------

RB, DESC, INFO = "struct printk_ringbuffer", "struct prb_desc", "struct printk_info"


def prb_layout(di: Debuginfo) -> PrbLayout:
    """The ring's layout from an engine's facts (kdebug.decode.structs.Debuginfo:
    drgn's or gdb's types, or a dump's VMCOREINFO)."""
    return PrbLayout(
        desc_size=di.sizeof(DESC), state_var=require(di, DESC, "state_var"),
        text_begin=require(di, DESC, "text_blk_lpos.begin"), text_next=require(di, DESC, "text_blk_lpos.next"),
        info_size=di.sizeof(INFO), seq=require(di, INFO, "seq"), ts_nsec=require(di, INFO, "ts_nsec"),
        text_len=require(di, INFO, "text_len"), facility=require(di, INFO, "facility"),
        level=require(di, INFO, "level"), caller_id=di.member(INFO, "caller_id"))


def read_ring(read, prb: int, di: Debuginfo) -> list[PrintkRecord]:
    """Every record of the ring at ``prb`` (the ``struct printk_ringbuffer``
    the kernel's ``prb`` points to), oldest first. ``read(address, size)``
    returns the kernel's memory: each ring is read whole, in one call."""
    lay = prb_layout(di)

    def g(path: str) -> int:
        return require(di, RB, path).get(raw)

    raw = read(prb, di.sizeof(RB))
    rings = PrbRings(count_bits=g("desc_ring.count_bits"), text_size_bits=g("text_data_ring.size_bits"),
                     head_id=g("desc_ring.head_id.counter"), tail_id=g("desc_ring.tail_id.counter"))
    descs = read(g("desc_ring.descs"), rings.count * lay.desc_size)
    infos = read(g("desc_ring.infos"), rings.count * lay.info_size)
    text = read(g("text_data_ring.data"), 1 << rings.text_size_bits)
    return decode_records(rings, lay, lambda i: descs[i * lay.desc_size:(i + 1) * lay.desc_size],
                          lambda i: infos[i * lay.info_size:(i + 1) * lay.info_size], text)
