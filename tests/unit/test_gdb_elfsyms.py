"""Section and symbol lookup in an ELF, checked against binutils."""

import shutil
import subprocess

import pytest

from kdebug.decode.elfsyms import ElfSymsError, parse_sections, read_vmlinux
from tests.conftest import need_tool


@pytest.fixture(scope="module")
def obj(tmp_path_factory):
    need_tool("gcc", "nm", "readelf")
    d = tmp_path_factory.mktemp("elf")
    (d / "t.c").write_text("int kd_data = 3;\nint kd_func(void) { return kd_data; }\n")
    subprocess.run(["gcc", "-c", "-O0", "-o", str(d / "t.o"), str(d / "t.c")], check=True, timeout=60)
    return d / "t.o"


def test_symbols_match_nm(obj):
    nm = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    truth = {line.split()[2]: int(line.split()[0], 16) for line in nm.splitlines() if len(line.split()) == 3}
    secs, syms = read_vmlinux(obj, ["kd_data", "kd_func", "absent"])
    assert syms == {"kd_data": truth["kd_data"], "kd_func": truth["kd_func"]}
    names = {s.name for s in secs}
    assert {".text", ".data", ".symtab"} <= names
    assert next(s for s in secs if s.name == ".text").alloc


def test_not_elf():
    with pytest.raises(ElfSymsError):
        parse_sections(b"\0" * 64, lambda off, n: b"")


def test_default_vmlinux_percpu_section_is_linked_at_zero(default_kernel):
    # The fact kd-symbol-file relies on: per-cpu symbols are offsets, not addresses.
    if default_kernel.vmlinux is None or shutil.which("readelf") is None:
        pytest.skip("no vmlinux")
    secs, syms = read_vmlinux(default_kernel.vmlinux, ["runqueues", "_stext"])
    pcpu = next(s for s in secs if s.name == ".data..percpu")
    assert pcpu.addr == 0 and syms["runqueues"] < pcpu.size
    assert syms["_stext"] >= 0xFFFFFFFF80000000
