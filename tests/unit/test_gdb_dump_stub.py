"""gdb on a dump through kdebug's stub: the notes the registers come from
(kdebug.vmcore.notes), the gdb command line and the stub's command."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from kdebug.attach.plan import LOADER, GdbPlan, gdb_argv
from kdebug.attach.postmortem import STUB_MODULE, stub_argv, stub_env
from kdebug.errors import VmcoreError
from kdebug.vmcore.info import VmcoreInfo
from kdebug.vmcore.locate import Dump
from kdebug.vmcore.notes import prstatus_descs


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    n = name + b"\0"
    pad = lambda b: b + bytes(-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(n), len(desc), ntype) + pad(n) + pad(desc)


def kdump_file(tmp_path: Path, notes: bytes, version: int = 6) -> Path:
    block = 4096
    head = bytearray(464)
    head[:8] = b"KDUMP   "
    struct.pack_into("<i", head, 8, version)
    struct.pack_into("<i", head, 428, block)
    sub = bytearray(104)
    struct.pack_into("<qQ", sub, 48, 2 * block, len(notes))
    path = tmp_path / "vmcore"
    path.write_bytes(bytes(head) + bytes(block - len(head)) + bytes(sub) + bytes(block - len(sub)) + notes)
    return path


def test_kdump_notes_give_one_prstatus_per_cpu_in_order(tmp_path):
    blob = (note(b"CORE", 1, b"cpu0" * 84) + note(b"CORE", 1, b"cpu1" * 84)
            + note(b"VMCOREINFO", 0, b"OSRELEASE=6.12\n"))
    assert prstatus_descs(kdump_file(tmp_path, blob), "kdump") == [b"cpu0" * 84, b"cpu1" * 84]


def test_old_or_cut_kdump_headers_say_so(tmp_path):
    with pytest.raises(VmcoreError, match="version 3"):
        prstatus_descs(kdump_file(tmp_path, note(b"CORE", 1, bytes(336)), version=3), "kdump")
    path = kdump_file(tmp_path, note(b"CORE", 1, bytes(336)))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(VmcoreError, match="cut short"):
        prstatus_descs(path, "kdump")


def test_gdb_connects_through_the_stub_and_reads_modules_once():
    plan = GdbPlan(vmlinux=Path("/v/vmlinux"), port=0, kaslr_offset=0x8200000, batch=True,
                   module_dirs=[Path("/own"), Path("/dbg")], remote="/run/kdebug/gdbstub-x/dump.sock",
                   commands=["kd-ps"])
    argv = gdb_argv(plan)
    ex = [argv[i + 1] for i, a in enumerate(argv) if a == "-ex"]
    assert ex == [f"source {LOADER}", "kd-symbol-file /v/vmlinux --offset 0x8200000",
                  "target remote /run/kdebug/gdbstub-x/dump.sock",
                  "kd-symbols --dir /own --dir /dbg", "kd-ps"]


def test_the_stub_runs_this_kdebug_on_the_dump(tmp_path, monkeypatch):
    odd = tmp_path / "a dump; rm -rf x" / "vmcore"
    dump = Dump(VmcoreInfo(odd, "kdump", 0), vmlinux=Path("/v/vm linux"), module_debug_dir=None, original=odd)
    assert stub_argv(dump, 7, python="/venv/bin/python") == [
        "/venv/bin/python", "-m", STUB_MODULE, str(odd), "--vmlinux", "/v/vm linux", "--fd", "7"]
    monkeypatch.setenv("PYTHONPATH", "/user/path")
    first, rest = stub_env()["PYTHONPATH"].split(":", 1)
    assert Path(first, "kdebug", "analysis", "dumpstub.py").is_file() and rest == "/user/path"


def test_symbol_search_finds_shared_suffixes_and_the_first_definition():
    from kdebug.decode.elfsyms import SEARCH_NAMES, SHT_SYMTAB, Section, lookup

    strs = b"\0xpanic_cpu\0init_task\0"
    sym = struct.Struct("<IBBHQQ")
    entries = [sym.pack(0, 0, 0, 0, 0, 0),
               sym.pack(2, 0, 0, 0, 0x99, 0),  # "panic_cpu" (a suffix of "xpanic_cpu"), undefined
               sym.pack(1, 0, 0, 1, 0x10, 4),  # "xpanic_cpu"
               sym.pack(2, 0, 0, 3, 0x20, 4),  # "panic_cpu": the first definition
               sym.pack(12, 0, 0, 3, 0x30, 4),  # "init_task"
               sym.pack(2, 0, 0, 3, 0x40, 4)]  # "panic_cpu" again
    data = b"".join(entries)
    blob = data + strs
    secs = [Section(".symtab", SHT_SYMTAB, 0, 0, 0, len(data), link=1, entsize=24),
            Section(".strtab", 3, 0, 0, len(data), len(strs))]

    def read_at(off, n):
        return blob[off:off + n]

    want = {"panic_cpu": 0x20, "xpanic_cpu": 0x10, "init_task": 0x30}
    assert lookup(secs, read_at, ["panic_cpu", "xpanic_cpu", "init_task", "absent"]) == want
    many = [*want, *(f"absent{i}" for i in range(SEARCH_NAMES))]  # the walk gives the same
    assert lookup(secs, read_at, many) == want


def test_a_dump_without_cpu_registers_is_one_line_before_gdb_starts(tmp_path):
    from kdebug.attach.plan import AttachOptions
    from kdebug.attach.postmortem import attach_dump
    from tests.conftest import need_tool

    need_tool("gdb")
    path = kdump_file(tmp_path, note(b"VMCOREINFO", 0, b"OSRELEASE=6.12\n"))
    dump = Dump(VmcoreInfo(path, "kdump", 0), vmlinux=Path("/v"), module_debug_dir=None, original=path)
    with pytest.raises(VmcoreError, match="no CPU registers"):
        attach_dump(dump, AttachOptions(batch=True), echo=lambda m: None)
