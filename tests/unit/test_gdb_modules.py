"""struct module decoding: /proc/modules' meaning (size, use count, holders),
one layout detection for both module layouts, and the section addresses
gdb loads a module at."""

import struct

import pytest

from kdebug.decode.modules import (
    MODULE_REF_BASE,
    decode_module,
    listed,
    module_holders,
    module_layout,
    module_record,
    module_sections,
    read_cstring,
    taint_letters,
)
from kdebug.format import format_modules
from tests.unit.fake_debuginfo import FakeDebuginfo

M = "struct module"
COMMON = {"state": (0, 4), "list": (8, 16), "name": (24, 56), "refcnt": (400, 4), "refcnt.counter": (400, 4),
          "source_list": (416, 16), "init": (440, 8), "exit": (448, 8), "taints": (456, 8),
          "sect_attrs": (464, 8)}
USE = {"source_list": (0, 16), "target_list": (16, 16), "source": (32, 8), "target": (40, 8)}
STATES = {"MODULE_STATE_LIVE": 0, "MODULE_STATE_COMING": 1, "MODULE_STATE_GOING": 2, "MODULE_STATE_UNFORMED": 3}


def v6_12() -> FakeDebuginfo:
    """mem[7] of struct module_memory {base; size} (v6.4+)."""
    return FakeDebuginfo({M: COMMON | {"mem": (100, 7 * 40)},
                          "struct module_memory": {"base": (0, 8), "size": (8, 4)},
                          "struct module_use": USE},
                         sizes={M: 512, "struct module_memory": 40}, enums=STATES | {"MOD_TEXT": 0})


def v6_1() -> FakeDebuginfo:
    """core_layout and init_layout (v4.5 to v6.3)."""
    return FakeDebuginfo({M: COMMON | {"core_layout": (100, 64), "core_layout.base": (100, 8),
                                       "core_layout.size": (108, 4), "init_layout": (200, 64),
                                       "init_layout.base": (200, 8), "init_layout.size": (208, 4)},
                          "struct module_use": USE},
                         sizes={M: 512}, enums=STATES)


class Memory:
    """Sparse little-endian memory for the read callbacks."""

    def __init__(self) -> None:
        self.blocks: dict[int, bytearray] = {}

    def put(self, addr: int, data: bytes) -> None:
        self.blocks[addr] = bytearray(data)

    def read(self, addr: int, size: int) -> bytes:
        for base, b in self.blocks.items():
            if base <= addr and addr + size <= base + len(b):
                return bytes(b[addr - base:addr - base + size])
        raise KeyError(hex(addr))

    def u64(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 8), "little")


def module_bytes(name: str, *, state=0, refcnt=1, sizes=(), base=0xC000_0000, source_next=0, init=0, exit_=0,
                 taints=0, sect_attrs=0, list_next=0, mem=True) -> bytearray:
    b = bytearray(512)
    struct.pack_into("<I", b, 0, state)
    struct.pack_into("<Q", b, 8, list_next)
    b[24:24 + len(name)] = name.encode()
    struct.pack_into("<i", b, 400, refcnt)
    struct.pack_into("<QQQQ", b, 416, source_next, 0, 0, 0)
    struct.pack_into("<QQQQ", b, 440, init, exit_, taints, sect_attrs)
    if mem:
        for i, size in enumerate(sizes):
            struct.pack_into("<QI", b, 100 + 40 * i, base if i == 0 else base + 0x10000 * i, size)
    else:
        struct.pack_into("<QI", b, 100, base, sizes[0])
        struct.pack_into("<QI", b, 200, 0, sizes[1])
    return b


def test_size_is_what_proc_modules_adds_up_on_either_layout():
    lay = module_layout(v6_12())
    raw = decode_module(bytes(module_bytes("pvpanic_pci", sizes=(4096, 4096, 0, 4096, 0, 0, 0))), 0x1000, lay)
    assert (raw.size, raw.text_base) == (12288, 0xC000_0000)  # all of mem[], not mem[MOD_TEXT]
    old = module_layout(v6_1())
    raw = decode_module(bytes(module_bytes("virtio_blk", sizes=(20480, 0), mem=False)), 0x1000, old)
    assert (raw.size, raw.text_base) == (20480, 0xC000_0000)
    assert len(old.region_sizes) == 2 and len(lay.region_sizes) == 7


def test_use_count_holders_and_permanent_as_proc_modules_prints_them():
    lay = module_layout(v6_12())
    mem = Memory()
    # pvpanic (at 0x1000) is used by pvpanic_pci (0x2000) and pvpanic_mmio
    # (0x3000): two struct module_use on its source_list, newest first.
    use1, use2 = 0x9000, 0x9100
    head = 0x1000 + 416
    mem.put(0x1000, module_bytes("pvpanic", refcnt=MODULE_REF_BASE + 2, source_next=use1, sizes=(4096,),
                                 init=0xFFFF_1000, exit_=0xFFFF_2000))
    mem.put(0x2000, module_bytes("pvpanic_pci", sizes=(4096,)))
    mem.put(0x3000, module_bytes("pvpanic_mmio", sizes=(4096,)))
    mem.put(use1, struct.pack("<QQQQQQ", use2, head, 0, 0, 0x2000, 0x1000))
    mem.put(use2, struct.pack("<QQQQQQ", head, use1, 0, 0, 0x3000, 0x1000))
    raw = decode_module(mem.read(0x1000, lay.size), 0x1000, lay)
    rec = module_record(raw, lay, module_holders(raw, lay, mem.read, mem.u64))
    assert (rec.refcount, rec.used_by, rec.permanent) == (2, ["pvpanic_pci", "pvpanic_mmio"], False)
    assert "pvpanic_pci,pvpanic_mmio" in format_modules([rec])
    # init without exit: /proc/modules says [permanent]; nothing uses it
    mem.put(0x4000, module_bytes("forever", sizes=(4096,), source_next=0x4000 + 416, init=0xFFFF_3000))
    raw = decode_module(mem.read(0x4000, lay.size), 0x4000, lay)
    rec = module_record(raw, lay, module_holders(raw, lay, mem.read, mem.u64))
    assert (rec.refcount, rec.used_by, rec.permanent) == (0, [], True)
    assert " [permanent] " in format_modules([rec])


def test_without_module_unload_the_use_count_is_unknown():
    di = v6_12()
    for m in ("refcnt", "refcnt.counter", "source_list", "exit"):
        di.types[M].pop(m)
    lay = module_layout(di)
    raw = decode_module(bytes(module_bytes("m", sizes=(4096,), init=1)), 0x1000, lay)
    rec = module_record(raw, lay, module_holders(raw, lay, Memory().read, Memory().u64))
    assert (rec.refcount, rec.used_by, rec.permanent) == (-1, [], False)


def test_unformed_modules_are_not_listed_and_states_come_from_the_enum():
    lay = module_layout(v6_12())
    assert not listed(decode_module(bytes(module_bytes("m", state=3)), 0, lay), lay)
    coming = decode_module(bytes(module_bytes("m", state=1)), 0, lay)
    assert listed(coming, lay) and module_record(coming, lay, []).state == "coming"


def test_taint_letters_in_bit_order():
    assert taint_letters((1 << 12) | (1 << 13)) == "OE"
    assert taint_letters(1 << 0 | 1 << 18) == "PN"
    assert taint_letters(1 << 9) == ""  # not a module taint


def _sections_memory(table_base: int, names: list[str], addrs: list[int], elem: int, name_off: int,
                     addr_off: int) -> Memory:
    mem = Memory()
    tbl = bytearray(elem * len(names))
    for i, (n, a) in enumerate(zip(names, addrs, strict=True)):
        struct.pack_into("<QQ", tbl, i * elem + name_off, 0x7000 + 0x40 * i, 0)
        struct.pack_into("<Q", tbl, i * elem + addr_off, a)
        mem.put(0x7000 + 0x40 * i, n.encode() + b"\0" * (0x40 - len(n)))
    mem.put(table_base, tbl)
    return mem


@pytest.mark.parametrize("era", ["v5.8", "v6.14"])
def test_section_addresses_on_either_sysfs_layout(era):
    """/sys/module/NAME/sections from struct module_sect_attrs: counted by
    nsections with the address beside the bin_attribute (v5.8..v6.13), or
    plain bin_attributes with the address in ->private, counted by the
    NULL-ended grp.bin_attrs (v6.14+)."""
    di = v6_12()
    names, addrs = [".text", ".exit.text", ".data"], [0xC000_0000, 0xC000_00A0, 0xC000_2020]
    sect_attrs = 0x5000
    if era == "v5.8":
        di.types["struct module_sect_attrs"] = {"grp": (0, 40), "grp.bin_attrs": (24, 8), "nsections": (40, 4),
                                                "attrs": (48, 0)}
        di.types["struct module_sect_attr"] = {"battr": (0, 80), "battr.attr.name": (0, 8), "address": (80, 8)}
        di.sizes["struct module_sect_attr"] = 88
        mem = _sections_memory(sect_attrs + 48, names, addrs, 88, 0, 80)
        mem.put(sect_attrs, struct.pack("<5QI4x", 0, 0, 0, 0, 0, len(names)))
    else:
        di.types["struct module_sect_attrs"] = {"grp": (0, 40), "grp.bin_attrs_new": (24, 8), "attrs": (40, 0)}
        di.types["struct bin_attribute"] = {"attr": (0, 16), "attr.name": (0, 8), "private": (48, 8)}
        di.sizes["struct bin_attribute"] = 80
        mem = _sections_memory(sect_attrs + 40, names, addrs, 80, 0, 48)
        ptrs = 0x6000
        mem.put(sect_attrs, struct.pack("<5Q", 0, 0, 0, ptrs, 0))
        mem.put(ptrs, struct.pack("<4Q", *(sect_attrs + 40 + 80 * i for i in range(3)), 0))
    lay = module_layout(di)
    raw = decode_module(bytes(module_bytes("m", sizes=(4096,), sect_attrs=sect_attrs)), 0x1000, lay)
    assert module_sections(raw, lay, mem.read, mem.u64) == dict(zip(names, addrs, strict=True))
    # no sysfs section attributes: nothing (kd-symbols falls back to the text base)
    raw = decode_module(bytes(module_bytes("m", sizes=(4096,))), 0x1000, lay)
    assert module_sections(raw, lay, mem.read, mem.u64) == {}


def test_read_cstring_stays_within_a_page():
    mem = Memory()
    mem.put(0x1FF0, b"__patchable_func")  # the page ends here: a 64-byte read would fault
    mem.put(0x2000, b"tion_entries".ljust(64, b"\0"))
    assert read_cstring(mem.read, 0x1FF0) == "__patchable_function_entries"
