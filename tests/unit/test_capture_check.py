"""Completeness checks of the three dump formats, on files built from the
format definitions (makedumpfile's diskdump_mod.h / makedumpfile.h, the ELF
spec) and cut at every interesting point. Real dumps cut short are checked
in tests/vm/test_capture.py."""

import struct

import pytest

from kdebug.capture.check import check_dump, parse_vmcoreinfo

INFO = b"OSRELEASE=6.1.0-test\nBUILD-ID=3b43fad5034874490492495d552c0af6a5fab235\nPAGESIZE=4096\n"


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    pad = lambda b: b + b"\0" * ((4 - len(b) % 4) % 4)  # noqa: E731
    n = name + b"\0"
    return struct.pack("<III", len(n), len(desc), ntype) + pad(n) + pad(desc)


def make_elf_core(pages: int = 3) -> bytes:
    notes = _note(b"VMCOREINFO", 0, INFO)
    phoff, phnum = 64, 1 + pages
    data_off = phoff + 56 * phnum + len(notes)
    eh = bytearray(64)
    eh[:4] = b"\x7fELF"
    eh[4], eh[5], eh[6] = 2, 1, 1
    struct.pack_into("<HHIQQQIHHHHHH", eh, 16, 4, 62, 1, 0, phoff, 0, 0, 64, 56, phnum, 64, 0, 0)
    phs = struct.pack("<IIQQQQQQ", 4, 0, phoff + 56 * phnum, 0, 0, len(notes), len(notes), 0)
    for i in range(pages):
        phs += struct.pack("<IIQQQQQQ", 1, 7, data_off + i * 4096, 0xFFFF888000000000 + i * 4096,
                           i * 4096, 4096, 4096, 0)
    return bytes(eh) + phs + notes + bytes(range(256)) * 16 * pages


def make_kdump(pages: int = 5, status: int = 0) -> bytes:
    bs = 4096
    hdr = bytearray(bs)
    hdr[:8] = b"KDUMP   "
    struct.pack_into("<i", hdr, 8, 6)
    struct.pack_into("<IiiII", hdr, 424, status, bs, 1, 2, 64)
    sub = bytearray(bs)
    info_off = bs + 200
    struct.pack_into("<qQ", sub, 32, info_off, len(INFO))
    struct.pack_into("<Q", sub, 96, 64)
    sub[200:200 + len(INFO)] = INFO
    bitmap1 = bytearray(bs)
    bitmap2 = bytearray(bs)
    for i in range(pages):
        bitmap1[i // 8] |= 1 << (i % 8)
        bitmap2[i // 8] |= 1 << (i % 8)
    desc_off = 4 * bs
    data_off = desc_off + pages * 24
    descs = b"".join(struct.pack("<qIIQ", data_off + i * 100, 100, 1, 0) for i in range(pages))
    data = b"\xab" * (100 * pages)
    return bytes(hdr + sub + bitmap1 + bitmap2) + descs + data


def make_flat(chunks=((0, b"a" * 5000), (8192, b"b" * 300))) -> bytes:
    head = bytearray(4096)
    head[:12] = b"makedumpfile"
    out = bytes(head)
    for off, data in chunks:
        out += struct.pack(">qq", off, len(data)) + data
    return out + struct.pack(">qq", -1, -1)


@pytest.fixture
def write(tmp_path):
    def w(data: bytes):
        p = tmp_path / "dump"
        p.write_bytes(data)
        return p
    return w


def test_vmcoreinfo_lines():
    assert parse_vmcoreinfo(INFO + b"\0\0") == {
        "OSRELEASE": "6.1.0-test", "BUILD-ID": "3b43fad5034874490492495d552c0af6a5fab235",
        "PAGESIZE": "4096"}


def test_elf_complete_and_vmcoreinfo(write):
    c = check_dump(write(make_elf_core()))
    assert (c.format, c.complete) == ("elf", True)
    assert c.build_id == "3b43fad5034874490492495d552c0af6a5fab235"
    assert c.release == "6.1.0-test"
    assert c.expected_size == c.size


@pytest.mark.parametrize("cut", [1, 4095, 4096 * 2])
def test_elf_truncated(write, cut):
    data = make_elf_core()
    c = check_dump(write(data[:-cut]))
    assert not c.complete and "truncated" in c.reason
    assert c.expected_size == len(data)


def test_elf_headers_only(write):
    assert not check_dump(write(make_elf_core()[:40])).complete


def test_kdump_complete(write):
    c = check_dump(write(make_kdump()))
    assert (c.format, c.complete, c.release) == ("kdump", True, "6.1.0-test")


@pytest.mark.parametrize("cut,where", [(1, "page data"), (500, "page data"), (600, "descriptors"),
                                       (4096 + 620, "bitmap")])
def test_kdump_truncated(write, cut, where):
    c = check_dump(write(make_kdump()[:-cut]))
    assert not c.complete
    assert where.split()[0] in c.reason


def test_kdump_marked_incomplete(write):
    c = check_dump(write(make_kdump(status=0x8)))
    assert not c.complete and "incomplete" in c.reason


def test_flat_complete(write):
    c = check_dump(write(make_flat()))
    assert (c.format, c.complete) == ("flattened", True)


@pytest.mark.parametrize("cut", [1, 16, 17, 100, 5000])
def test_flat_without_end_marker(write, cut):
    c = check_dump(write(make_flat()[:-cut]))
    assert not c.complete and "end marker" in c.reason


def test_flat_stray_bytes(write):
    c = check_dump(write(make_flat() + b"x"))
    assert not c.complete and "stray" in c.reason


@pytest.mark.parametrize("data", [b"", b"hello world, not a dump" * 10])
def test_unknown(write, data):
    c = check_dump(write(data))
    assert (c.format, c.complete) == ("unknown", False)
