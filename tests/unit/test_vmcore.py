"""Reading dumps on files built from the format definitions (the ELF spec,
makedumpfile's diskdump_mod.h and makedumpfile.h): capture's completeness
check cut at every interesting point, post-mortem's identification and every
bad input. Real dumps cut short are checked in tests/vm/test_capture_faults.py."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from kdebug.errors import VmcoreError
from kdebug.vmcore.info import identify, parse_vmcoreinfo, read_dump

BUILD_ID = "3b43fad5034874490492495d552c0af6a5fab235"
VMCI = f"OSRELEASE=6.1.0-56-cloud-amd64\nBUILD-ID={BUILD_ID}\nPAGESIZE=4096\nKERNELOFFSET=a000000\n"


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name) + 1, len(desc), ntype) + pad(name + b"\0") + pad(desc)


def make_elf_core(notes: bytes, load_size: int = 8192, etype: int = 4, cut: int = 0) -> bytes:
    """ELF64 core: header, PT_NOTE, one PT_LOAD of ``load_size`` bytes."""
    phoff, phnum = 64, 2
    note_off = phoff + 56 * phnum
    load_off = note_off + len(notes)
    ehdr = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack(
        "<HHIQQQIHHHHHH", etype, 62, 1, 0, phoff, 0, 0, 64, 56, phnum, 0, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(notes), len(notes), 4)
    ph += struct.pack("<IIQQQQQQ", 1, 7, load_off, 0xffff888000000000, 0, load_size, load_size, 4096)
    data = ehdr + ph + notes + b"\0" * load_size
    return data[: len(data) - cut] if cut else data


def make_kdump(vmcoreinfo: str, pages: int = 3, cut: int = 0, status: int = 0,
               shared_last: bool = False) -> bytes:
    """A minimal kdump-compressed file (header v6, 4 KiB blocks, ``pages`` pages).
    ``shared_last``: the last page's descriptor points at the first page's data,
    as makedumpfile does for pages with equal contents (the zero page)."""
    block = 4096
    hdr = bytearray(block)
    hdr[0:8] = b"KDUMP   "
    struct.pack_into("<i", hdr, 8, 6)
    for i, s in enumerate([b"Linux", b"kdebug", b"6.1.0-56-cloud-amd64", b"#1 SMP", b"x86_64", b""]):
        hdr[12 + 65 * i: 12 + 65 * i + len(s)] = s
    bitmap_blocks = 2
    struct.pack_into("<IiiIIIIIIi", hdr, 424, status, block, 1, bitmap_blocks, 64, 0, 0, 0, 0, 1)
    sub = bytearray(block)
    vmci = vmcoreinfo.encode()
    bitmaps = bytearray(bitmap_blocks * block)
    bitmaps[block] = (1 << pages) - 1  # the second bitmap: pages 0..pages-1 dumped
    desc_off = block * 2 + len(bitmaps)
    data_off = desc_off + 24 * pages
    vmci_off = block + 112  # makedumpfile writes it inside the sub-header blocks
    sub[112:112 + len(vmci)] = vmci
    struct.pack_into("<QiiQQqQ", sub, 0, 0, 31, 0, 0, 0, vmci_off, len(vmci))
    offsets = [data_off + 100 * i for i in range(pages)]
    if shared_last:
        offsets[-1] = data_off
    descs = b"".join(struct.pack("<qIIQ", off, 100, 1, 0) for off in offsets)
    data = bytes(hdr) + bytes(sub) + bytes(bitmaps) + descs + b"z" * (100 * len(set(offsets)))
    return data[: len(data) - cut] if cut else data


def _write(tmp_path: Path, data: bytes, name: str = "vmcore") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_elf_vmcore(tmp_path):
    info = identify(_write(tmp_path, make_elf_core(_note(b"VMCOREINFO", 0, VMCI.encode()))))
    assert (info.format, info.build_id, info.release) == ("elf", BUILD_ID, "6.1.0-56-cloud-amd64")
    assert info.machine == "x86_64" and not info.truncated


def test_capture_directory_means_its_vmcore(tmp_path):
    _write(tmp_path, make_elf_core(_note(b"VMCOREINFO", 0, VMCI.encode())))
    assert identify(tmp_path).path == tmp_path / "vmcore"


def test_kdump_compressed(tmp_path):
    info = identify(_write(tmp_path, make_kdump(VMCI)))
    assert (info.format, info.build_id, info.machine) == ("kdump", BUILD_ID, "x86_64")
    assert info.expected_size == info.size


@pytest.mark.parametrize("data, message", [
    (b"", "is empty"),
    (bytes(range(256)) * 64, "is not a vmcore"),
    (make_elf_core(b"", etype=2), "an executable"),
    (make_elf_core(_note(b"CORE", 3, b"\0" * 40 + b"bash".ljust(16, b"\0") + b"\0" * 80)),
     "user-space core dump (of 'bash')"),
    (make_elf_core(_note(b"CORE", 1, b"\0" * 336)), "has no VMCOREINFO"),
    (make_elf_core(_note(b"VMCOREINFO", 0, VMCI.encode()), cut=4096), "is truncated"),
    (make_kdump(VMCI, cut=50), "is truncated"),
    (b"\x7fELF\x02\x01" + b"\0" * 10, "damaged ELF"),
    (b"KDUMP   " + b"\0" * 20, "truncated inside its kdump header"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, data, message):
    with pytest.raises(VmcoreError) as e:
        identify(_write(tmp_path, data))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_directory_and_missing(tmp_path):
    with pytest.raises(VmcoreError, match="directory without a vmcore"):
        identify(tmp_path)
    with pytest.raises(VmcoreError, match="does not exist"):
        identify(tmp_path / "nope")


def test_flattened_is_recognised(tmp_path):
    info = identify(_write(tmp_path, make_flattened(make_kdump(VMCI))))
    assert info.format == "flattened" and "makedumpfile -R" in info.notes[0]
    # a stream cut before its end marker is refused before makedumpfile -R sees it
    with pytest.raises(VmcoreError, match="without the flattened stream's end marker"):
        identify(_write(tmp_path, b"makedumpfile\0\0\0\0" + b"\0" * 4080))


def test_parse_vmcoreinfo_keeps_symbol_keys():
    d = parse_vmcoreinfo("SYMBOL(_stext)=ffffffff8b000000\nCRASHTIME=1700000000\nnoise\n")
    assert d == {"SYMBOL(_stext)": "ffffffff8b000000", "CRASHTIME": "1700000000"}


def make_flattened(data: bytes, chunk: int = 5000) -> bytes:
    """makedumpfile's flattened stream (-F) of ``data``: a 4 KiB header, then
    (offset, size) big-endian headers each followed by its bytes, then -1, -1."""
    head = bytearray(4096)
    head[0:12] = b"makedumpfile"
    struct.pack_into(">qq", head, 16, 1, 1)  # TYPE_FLAT_HEADER, VERSION_FLAT_HEADER
    out = bytearray(head)
    for off in range(0, len(data), chunk):
        part = data[off: off + chunk]
        out += struct.pack(">qq", off, len(part)) + part
    return bytes(out + struct.pack(">qq", -1, -1))


def test_flattened_is_reassembled_by_makedumpfile(tmp_path, monkeypatch):
    from kdebug.vmcore import flattened as dump
    from tests.conftest import need_tool

    need_tool("makedumpfile")
    monkeypatch.setattr(dump, "cache_dir", lambda: tmp_path / "cache")
    kdump = make_kdump(VMCI)
    flat = _write(tmp_path, make_flattened(kdump), "vmcore.flat")
    assert identify(flat).format == "flattened"
    out = dump.reassemble(flat)
    assert out.read_bytes() == kdump
    assert identify(out).build_id == BUILD_ID
    assert dump.reassemble(flat) == out  # cached


def test_real_user_space_core_is_named(tmp_path):
    """A core written by gdb's gcore for a sleeping process."""
    import subprocess

    from tests.conftest import need_tool

    need_tool("gdb")
    proc = subprocess.Popen(["sleep", "60"])
    try:
        core = tmp_path / "core"
        subprocess.run(["gdb", "-nx", "-batch", "-p", str(proc.pid), "-ex", f"gcore {core}"],
                       capture_output=True, timeout=60)
    finally:
        proc.kill()
        proc.wait()
    if not core.exists():  # gdb appends the pid on some versions
        core = next(tmp_path.glob("core*"))
    with pytest.raises(VmcoreError, match="user-space core dump \\(of 'sleep'\\)"):
        identify(core)


# --- completeness (capture's check before a dump is called vmcore) --------------

ELF_CORE = make_elf_core(_note(b"VMCOREINFO", 0, VMCI.encode()), load_size=3 * 4096)


def test_vmcoreinfo_note_padding_is_dropped():
    assert parse_vmcoreinfo(VMCI.encode() + b"\0\0")["BUILD-ID"] == BUILD_ID


def test_elf_complete(tmp_path):
    c = read_dump(_write(tmp_path, ELF_CORE))
    assert (c.format, c.complete, c.problem, c.build_id) == ("elf", True, "", BUILD_ID)
    assert c.expected_size == c.size == len(ELF_CORE)


@pytest.mark.parametrize("cut", [1, 4095, 4096 * 2])
def test_elf_truncated(tmp_path, cut):
    c = read_dump(_write(tmp_path, ELF_CORE[:-cut]))
    assert not c.complete and c.problem.startswith("is truncated: its memory segments end at byte")
    assert c.expected_size == len(ELF_CORE)


def test_elf_headers_only(tmp_path):
    assert "damaged ELF" in read_dump(_write(tmp_path, ELF_CORE[:40])).problem


def test_kdump_complete(tmp_path):
    c = read_dump(_write(tmp_path, make_kdump(VMCI)))
    assert (c.format, c.complete, c.release) == ("kdump", True, "6.1.0-56-cloud-amd64")


# make_kdump(pages=3): header, sub-header, two bitmaps (4 KiB blocks), 72 bytes of
# descriptors, 300 bytes of page data; the second bitmap ends 372 bytes before the end.
@pytest.mark.parametrize("cut,where", [(1, "page data"), (250, "page data"), (320, "page descriptors"),
                                       (2756, "page bitmap")])
def test_kdump_truncated(tmp_path, cut, where):
    c = read_dump(_write(tmp_path, make_kdump(VMCI, cut=cut)))
    assert not c.complete and where in c.problem, c.problem


def test_kdump_truncation_found_past_a_shared_last_page(tmp_path):
    data = make_kdump(VMCI, pages=3, shared_last=True)
    assert read_dump(_write(tmp_path, data)).complete
    c = read_dump(_write(tmp_path, data[:-1]))
    assert not c.complete and c.expected_size == len(data)


def test_kdump_marked_incomplete(tmp_path):
    c = read_dump(_write(tmp_path, make_kdump(VMCI, status=0x8)))
    assert not c.complete and "marked incomplete" in c.problem


FLAT = make_flattened(make_kdump(VMCI))


def test_flat_complete(tmp_path):
    c = read_dump(_write(tmp_path, FLAT))
    assert (c.format, c.complete, c.expected_size) == ("flattened", True, len(FLAT))


@pytest.mark.parametrize("cut", [1, 16, 17, 100, 5000])
def test_flat_without_end_marker(tmp_path, cut):
    c = read_dump(_write(tmp_path, FLAT[:-cut]))
    assert not c.complete and "end marker" in c.problem


def test_flat_on_a_disk_says_where_it_ends(tmp_path):
    c = read_dump(_write(tmp_path, FLAT + b"\0" * 4096))
    assert not c.complete and "4096 stray bytes" in c.problem
    assert c.expected_size == len(FLAT)


@pytest.mark.parametrize("data", [b"", b"hello world, not a dump" * 10])
def test_unknown(tmp_path, data):
    c = read_dump(_write(tmp_path, data))
    assert (c.format, c.complete) == ("unknown", False)
