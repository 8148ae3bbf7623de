"""makedumpfile's dump level from the kernel and binary pair, and why a
filtered dump lacks kernel data (kdebug.vmcore.filter, pure)."""

from __future__ import annotations

import struct

import pytest

from kdebug.vmcore.filter import (
    DEFAULT_LEVEL,
    USER,
    choose_level,
    explain_missing,
    kernel_exports,
    kernel_exports_file,
    tool_reads,
)
from kdebug.vmcore.info import read_dump
from tests.unit.test_vmcore import make_kdump

SLAB = "PAGE_SLAB_MAPCOUNT_VALUE"


def make_kernel_elf(loaded: bytes, unloaded: bytes = b"") -> bytes:
    """ELF64 executable: one PT_LOAD holding ``loaded``, then ``unloaded``
    bytes no segment covers (where a vmlinux keeps its DWARF)."""
    phoff = 64
    load_off = phoff + 56
    ehdr = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack(
        "<HHIQQQIHHHHHH", 2, 62, 1, 0xffffffff81000000, phoff, 0, 0, 64, 56, 1, 0, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 1, 5, load_off, 0xffffffff81000000, 0, len(loaded), len(loaded), 4096)
    return ehdr + ph + loaded + unloaded


# --- the choice -------------------------------------------------------------------

def test_v610_kernel_with_a_binary_that_does_not_read_slab_page_types_keeps_user_data():
    c = choose_level(None, {SLAB}, set(), "/usr/bin/makedumpfile")
    assert (c.level, c.requested, c.safe) == (DEFAULT_LEVEL & ~USER, None, True) == (23, None, True)
    assert f"NUMBER({SLAB})" in c.reason and "46df8e73a4a3" in c.reason and "/usr/bin/makedumpfile" in c.reason
    assert c.to_dict()["kernel_exports"] == [SLAB] and c.to_dict()["tool_reads"] == []


@pytest.mark.parametrize("exports, reads", [
    (set(), set()),  # a kernel with PG_slab (before v6.10): nothing to misfile
    ({SLAB}, {SLAB}),  # a makedumpfile that reads the page type (1.7.6+)
    (set(), {SLAB}),
])
def test_full_filter_where_the_binary_reads_what_the_kernel_marks(exports, reads):
    c = choose_level(None, exports, reads)
    assert (c.level, c.safe) == (31, True) and "safely" in c.reason


@pytest.mark.parametrize("exports, reads", [(None, set()), ({SLAB}, None), (None, None)])
def test_an_unreadable_side_counts_as_the_unsafe_one(exports, reads):
    c = choose_level(None, exports, reads)
    assert c.level == 23 and "could not be read" in c.reason


def test_an_explicit_level_is_kept_but_called_unsafe_where_it_drops_kernel_data():
    c = choose_level(31, {SLAB}, set())
    assert (c.level, c.requested, c.safe) == (31, 31, False)
    assert "as asked" in c.reason and "-d 23 would keep it" in c.reason
    ok = choose_level(17, {SLAB}, set())
    assert (ok.level, ok.safe, ok.reason) == (17, True, "-d 17 as asked")
    assert choose_level(31, set(), set()).safe


# --- reading both sides -----------------------------------------------------------------

def test_kernel_exports_only_names_in_loaded_segments():
    vmci_strings = b"\0PG_lru\0PG_private\0" + SLAB.encode() + b"\0PG_hwpoison\0"
    assert kernel_exports(_reader(make_kernel_elf(vmci_strings))) == {SLAB}
    # The name in the DWARF only (not loaded) is not an export.
    assert kernel_exports(_reader(make_kernel_elf(b"\0PG_slab\0", SLAB.encode() + b"\0"))) == set()


def test_kernel_exports_file_and_unreadable_inputs(tmp_path):
    vm = tmp_path / "vmlinux"
    vm.write_bytes(make_kernel_elf(b"\0" + SLAB.encode() + b"\0"))
    assert kernel_exports_file(vm) == {SLAB}
    assert kernel_exports_file(tmp_path / "missing") is None
    (tmp_path / "junk").write_bytes(b"not an image")
    assert kernel_exports_file(None, tmp_path / "junk") is None
    assert kernel_exports_file(None, None) is None


def test_tool_reads_the_number_keys_it_looks_for(tmp_path):
    new, old = tmp_path / "new", tmp_path / "old"
    new.write_bytes(b"\x7fELF...NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=\0NUMBER(" + SLAB.encode() + b")=\0")
    old.write_bytes(b"\x7fELF...NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=\0NUMBER(PG_slab)=\0")
    assert (tool_reads(new), tool_reads(old), tool_reads(tmp_path / "none")) == ({SLAB}, set(), None)


def test_kdump_header_dump_level(tmp_path):
    data = bytearray(make_kdump("OSRELEASE=6.12.0\n"))
    path = tmp_path / "vmcore"
    path.write_bytes(bytes(data))
    assert read_dump(path).dump_level == 31
    struct.pack_into("<i", data, 4096 + 8, 17)  # kdump_sub_header.dump_level, after phys_base
    path.write_bytes(bytes(data))
    assert read_dump(path).dump_level == 17


# --- why a dump lacks kernel data ----------------------------------------------------------

def test_explain_a_v610_dump_filtered_with_user_data():
    cause, fix = explain_missing("kdump", 31, {f"NUMBER({SLAB})": "-184549377"}, ["slab", ""])
    assert "-d 31" in cause and "(slab pages)" in cause and SLAB in cause and "-d 8" in cause
    assert "-d 23" in fix and "1.7.6" in fix


def test_explain_slab_pages_missing_where_the_kernel_exports_no_page_type():
    # A v6.2-v6.9 kernel (PG_slab) dumped by a makedumpfile without the PG_slab check in isAnon.
    cause, fix = explain_missing("kdump", 31, {"NUMBER(PG_slab)": "7"}, ["slab"])
    assert "(slab pages)" in cause and "(-d 8)" in cause and fix.startswith("capture again with -d 23")


@pytest.mark.parametrize("fmt, level, vmci, cause_has, fix_has", [
    ("kdump", 17, {f"NUMBER({SLAB})": "1"}, "filtered (makedumpfile -d 17)", "-d 17"),
    ("kdump", 31, {}, "filtered (makedumpfile -d 31)", "-d 17"),
    ("kdump", None, {}, "not recorded", "-d 17"),
    ("elf", None, {}, "cut short", "capture again"),
])
def test_explain_other_gaps(fmt, level, vmci, cause_has, fix_has):
    cause, fix = explain_missing(fmt, level, vmci)
    assert cause_has in cause and fix_has in fix


def _reader(data: bytes):
    return lambda off, size: data[off: off + size]
