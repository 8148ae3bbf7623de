"""printk ring buffer decoding on a hand-built ring: wrapping text blocks,
data-less records, descriptors in the wrong state or from an older lap."""

import struct

from kdebug.decode.printk import DESC_FLAGS_SHIFT, PrbLayout, PrbRings, block_text, caller_name, decode_records, tail
from kdebug.decode.structs import Field

LAY = PrbLayout(desc_size=24, state_var=Field(0, 8), text_begin=Field(8, 8), text_next=Field(16, 8),
                info_size=32, seq=Field(0, 8), ts_nsec=Field(8, 8), text_len=Field(16, 2),
                facility=Field(18, 1), level=Field(19, 1, 5, 3), caller_id=Field(20, 4))
COUNT_BITS, TEXT_BITS = 2, 6  # 4 descriptors, 64 bytes of text


class Ring:
    def __init__(self):
        self.descs = [bytes(24)] * 4
        self.infos = [bytes(32)] * 4
        self.text = bytearray(64)
        self.lpos = 0

    def add(self, did, seq, msg, level=6, state=2, caller=5, ts=1_500_000_000):
        data = msg.encode()
        size = (8 + len(data) + 7) & ~7
        begin = self.lpos
        nxt = begin + size
        if begin >> TEXT_BITS != (nxt - 1) >> TEXT_BITS:  # wraps: store at the start
            nxt = ((nxt >> TEXT_BITS) << TEXT_BITS) + size
            start = 0
        else:
            start = begin & 63
        self.text[start:start + 8] = struct.pack("<Q", did)
        self.text[start + 8:start + 8 + len(data)] = data
        self.lpos = nxt
        slot = did & 3
        self.descs[slot] = struct.pack("<QQQ", state << DESC_FLAGS_SHIFT | did, begin, nxt)
        self.infos[slot] = struct.pack("<QQHBBI", seq, ts, len(data), 0, level << 5, caller).ljust(32, b"\0")


def decode(ring, head, tail_id):
    rings = PrbRings(COUNT_BITS, TEXT_BITS, head, tail_id)
    return decode_records(rings, LAY, ring.descs.__getitem__, ring.infos.__getitem__, bytes(ring.text))


def test_records_in_order_with_level_caller_and_wrap():
    r = Ring()
    r.add(0, 0, "hello world 1")   # 24 bytes at 0
    r.add(1, 1, "second line", level=3, caller=0x80000001)  # at 24
    r.add(2, 2, "third one wraps!")  # 24 bytes: 48..72 crosses 64 -> stored at 0, lap 1
    recs = decode(r, 2, 1)
    assert [(x.seq, x.text, x.level, x.caller) for x in recs] == [
        (1, "second line", 3, "C1"), (2, "third one wraps!", 6, "T5")]
    assert recs[0].timestamp_ns == 1_500_000_000


def test_skips_reserved_and_stale_descriptors():
    r = Ring()
    r.add(0, 0, "a")
    r.add(1, 1, "b", state=0)  # reserved: being written
    r.add(2, 2, "c")
    r.descs[0] = struct.pack("<QQQ", 2 << DESC_FLAGS_SHIFT | 4, 0, 16)  # slot reused by id 4
    assert [x.text for x in decode(r, 2, 0)] == ["c"]


def test_dataless_and_truncated_blocks():
    assert block_text(b"x" * 64, 6, 1, 1, 10) == b""  # FAILED_LPOS
    text = struct.pack("<Q", 0) + b"abcdefgh" + bytes(48)
    assert block_text(text, 6, 0, 16, 100) == b"abcdefgh"  # length capped at the block


def test_caller_names_and_tail():
    assert caller_name(123) == "T123"
    assert caller_name(0x80000002) == "C2"
    assert tail([1, 2, 3], 2) == [2, 3] and tail([1, 2], None) == [1, 2]
