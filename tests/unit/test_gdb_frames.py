"""kdebug.decode.frames: the ELF symbol lookup kd-bt uses (drgn's rules, so
both engines name a frame alike), the user-space boundary, and the reading
of a real relocatable ELF file's symbols at placed section addresses."""

import subprocess

from kdebug.decode.frames import (
    KERNEL_START,
    ElfSymbol,
    SymbolTable,
    ends_walk,
    lookup_pc,
    read_symbol_table,
)
from tests.conftest import need_tool

SEC = (0x1000, 0x1000)
GLOBAL, WEAK, LOCAL = 1, 2, 0


def sym(name, addr, size, binding=GLOBAL):
    return ElfSymbol(name, addr, size, binding, SEC)


def test_the_closest_start_then_the_smaller_then_the_stronger_binding():
    t = SymbolTable([sym("outer", 0x1000, 0x100), sym("inner", 0x1040, 0x20),
                     sym("big_alias", 0x1040, 0x40), sym("weak", 0x1080, 0x10, WEAK),
                     sym("local", 0x1080, 0x10, LOCAL), sym("first", 0x10a0, 0x10, LOCAL),
                     sym("second", 0x10a0, 0x10, LOCAL)])
    assert t.lookup(0x1000).name == "outer"
    assert t.lookup(0x1045).name == "inner"  # same start: the smaller
    assert t.lookup(0x1065).name == "big_alias"  # past inner's end
    assert t.lookup(0x1095).name == "outer"  # past every inner one
    assert t.lookup(0x1085).name == "weak"  # same extent: weak over local
    assert t.lookup(0x10a5).name == "first"  # all equal: the first in the file
    assert t.lookup(0x0fff) is None


def test_a_sizeless_symbol_only_where_no_sized_one_reaches():
    t = SymbolTable([sym("sized", 0x1000, 0x10), sym("asm_label", 0x1010, 0), sym("covered", 0x1004, 0),
                     ElfSymbol("elsewhere", 0x1800, 0, GLOBAL, (0x1800, 0x10))])
    assert t.lookup(0x1008).name == "sized"
    assert t.lookup(0x1400).name == "asm_label"  # the nearest sizeless one before
    assert t.lookup(0x1805).name == "elsewhere"
    assert t.lookup(0x1900) is None  # outside that symbol's section


def test_user_space_ends_the_walk_after_frame_0():
    assert ends_walk(1, 0x7FFD0000) and ends_walk(3, 0)
    assert not ends_walk(0, 0) and not ends_walk(2, KERNEL_START)
    assert lookup_pc(0x2000, interrupted=False) == 0x1FFF and lookup_pc(0x2000, interrupted=True) == 0x2000


def test_reads_a_relocatable_file_at_its_placed_sections(tmp_path):
    need_tool("gcc")
    src = tmp_path / "m.c"
    src.write_text("int helper(int x) { return x * 3; }\n"
                   "static int __attribute__((noinline)) hidden(int x) { return x + 1; }\n"
                   "int entry(int x) { return hidden(x) + helper(x); }\n")
    obj = tmp_path / "m.o"
    subprocess.run(["gcc", "-O1", "-c", "-o", str(obj), str(src)], check=True, timeout=60)
    t = read_symbol_table(obj, section_addresses={".text": 0xFFFFFFFFC0001000})
    by_name = {s.name: s for s in t.symbols}
    assert {"helper", "hidden", "entry"} <= set(by_name)
    e = by_name["entry"]
    assert e.address >= 0xFFFFFFFFC0001000 and e.size > 0
    assert t.lookup(e.address + e.size - 1).name == "entry"
    assert read_symbol_table(obj).symbols == []  # .text not placed: nothing is where it would be
