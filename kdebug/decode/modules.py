"""``struct module`` from raw bytes: what a module is, as /proc/modules shows it.

The one place where a module's fields get their meaning (size, use count,
holders, address, taints) and where the section addresses gdb loads a
module's symbols at are found, for every engine: kd-lsmod in gdb and the
drgn collectors both build their layout with :func:`module_layout` and their
records with :func:`module_record`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kdebug.decode.structs import Debuginfo, Field, pointer_at, require
from kdebug.model import ModuleRecord

M = "struct module"

#: kernel/module/main.c: a live module's refcnt starts at MODULE_REF_BASE, and
#: module_refcount() (the use count /proc/modules prints) subtracts it.
MODULE_REF_BASE = 1

#: The letters /proc/modules prints for a module's taints (kernel/panic.c
#: taint_flags[], bit -> c_true, the flags that can be set on a module). The
#: letters are ABI (Documentation/admin-guide/tainted-kernels.rst).
MODULE_TAINT_LETTERS = {0: "P", 1: "F", 10: "C", 12: "O", 13: "E", 15: "K", 16: "X", 17: "T", 18: "N"}
TAINT_OOT_MODULE = 12

#: No kernel has this many modules, or a module this many holders or sections:
#: a list that goes on is memory read mid-change, or corrupt.
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class SectAttrsLayout:
    """``struct module_sect_attrs``, behind /sys/module/NAME/sections."""

    attrs: int  # offset of attrs[]
    elem_size: int  # one attrs[] element
    name: Field  # const char * in an element
    address: Field  # the section's address in an element
    nsections: Field | None = None  # gone in v6.14: count the NULL-ended bin_attrs then
    bin_attrs: Field | None = None  # grp.bin_attrs(_new): pointers to each element, NULL-ended


@dataclass(frozen=True)
class ModuleLayout:
    """Where this kernel keeps what a ModuleRecord needs in ``struct module``."""

    size: int  # sizeof(struct module): one read per module
    state: Field
    list_next: Field
    name: Field
    text_base: Field  # the address /proc/modules prints: the start of the module's text
    region_sizes: tuple[Field, ...]  # the sizes /proc/modules adds up
    states: tuple[tuple[int, str], ...] = ()  # enum module_state value -> "live", "coming", ...
    refcnt: Field | None = None  # CONFIG_MODULE_UNLOAD
    source_list: Field | None = None  # source_list.next: the modules that use this one
    use_source_list: int = 0  # offset of source_list in struct module_use
    use_source: int = 0  # offset of source (struct module *) in struct module_use
    init: Field | None = None
    exit: Field | None = None  # CONFIG_MODULE_UNLOAD
    taints: Field | None = None
    sect_attrs: Field | None = None  # CONFIG_KALLSYMS + CONFIG_SYSFS
    sections: SectAttrsLayout | None = None


def _regions(di: Debuginfo) -> tuple[Field, tuple[Field, ...]]:
    """(text base, sizes /proc/modules adds up) of this kernel's module layout."""
    # Since Linux commit ac3b43283923 ("module: replace module_layout with
    # module_memory") (v6.4) a module is regions mem[MOD_TEXT..]: /proc/modules
    # shows the sum over all of them.
    mem = di.member(M, "mem")
    if mem is not None:
        elem = di.sizeof("struct module_memory")
        base = require(di, "struct module_memory", "base")
        size = require(di, "struct module_memory", "size")
        text = di.enumerator("MOD_TEXT") or 0
        sizes = tuple(Field(mem.offset + i * elem + size.offset, size.size) for i in range(mem.size // elem))
        return Field(mem.offset + text * elem + base.offset, 8), sizes
    # Since Linux commit 7523e4dc5057 ("module: use a structure to
    # encapsulate layout.") (v4.5) core_layout and init_layout; data_layout
    # from commit 01dc0386efb7 ("module: Add
    # CONFIG_ARCH_WANTS_MODULES_DATA_IN_VMALLOC") (v5.18) where an arch wants
    # data apart: /proc/modules adds all three.
    core = di.member(M, "core_layout.base")
    if core is not None:
        sizes = tuple(f for f in (di.member(M, "core_layout.size"), di.member(M, "init_layout.size"),
                                  di.member(M, "data_layout.size")) if f is not None)
        return Field(core.offset, 8), sizes
    return Field(require(di, M, "module_core").offset, 8), (require(di, M, "core_size"),
                                                           require(di, M, "init_size"))


def _sect_attrs_layout(di: Debuginfo) -> SectAttrsLayout | None:
    S = "struct module_sect_attrs"
    attrs = di.member(S, "attrs")
    if attrs is None:
        return None
    nsections = di.member(S, "nsections")
    # An element is struct module_sect_attr {name, address}, {battr, address}
    # since Linux commit ed66f991bb19 ("module: Refactor section attr into bin
    # attribute") (v5.8). In v6.14 "module: sysfs: Drop member
    # 'module_sect_attrs::nsections'", "... Drop member
    # 'module_sect_attr::address'" and "... Drop 'struct module_sect_attr'"
    # left plain bin_attributes with the address in ->private, counted by the
    # NULL-ended grp.bin_attrs (bin_attrs_new while sysfs moved to const).
    if di.member("struct module_sect_attr", "address") is not None:
        elem = "struct module_sect_attr"
        name = di.member(elem, "battr.attr.name") or require(di, elem, "name")
        address = require(di, elem, "address")
    else:
        elem = "struct bin_attribute"
        name, address = require(di, elem, "attr.name"), require(di, elem, "private")
    bin_attrs = di.member(S, "grp.bin_attrs_new") or di.member(S, "grp.bin_attrs")
    if nsections is None and bin_attrs is None:
        return None
    return SectAttrsLayout(attrs=attrs.offset, elem_size=di.sizeof(elem), name=pointer_at(name),
                           address=pointer_at(address), nsections=nsections,
                           bin_attrs=pointer_at(bin_attrs) if bin_attrs else None)


def module_layout(di: Debuginfo) -> ModuleLayout:
    text_base, sizes = _regions(di)
    states = tuple((v, n.removeprefix("MODULE_STATE_").lower()) for n in
                   ("MODULE_STATE_LIVE", "MODULE_STATE_COMING", "MODULE_STATE_GOING", "MODULE_STATE_UNFORMED")
                   if (v := di.enumerator(n)) is not None)
    source_list = di.member(M, "source_list")
    return ModuleLayout(
        size=di.sizeof(M), state=require(di, M, "state"), list_next=pointer_at(require(di, M, "list")),
        name=require(di, M, "name"), text_base=text_base, region_sizes=sizes, states=states,
        refcnt=di.member(M, "refcnt.counter") or di.member(M, "refcnt"),
        source_list=pointer_at(source_list) if source_list else None,
        use_source_list=require(di, "struct module_use", "source_list").offset if source_list else 0,
        use_source=require(di, "struct module_use", "source").offset if source_list else 0,
        init=di.member(M, "init"), exit=di.member(M, "exit"), taints=di.member(M, "taints"),
        sect_attrs=di.member(M, "sect_attrs"), sections=_sect_attrs_layout(di),
    )


@dataclass(frozen=True)
class RawModule:
    address: int  # of the struct module
    name: str
    state: int
    text_base: int
    size: int  # as /proc/modules adds it up
    refcnt: int | None  # None without CONFIG_MODULE_UNLOAD
    source_list_next: int | None
    taints: int
    permanent: bool  # has an init function but no exit: can never be unloaded
    sect_attrs: int
    list_next: int


def decode_module(buf: bytes, address: int, layout: ModuleLayout) -> RawModule:
    """``buf`` holds the whole struct module (``layout.size`` bytes)."""
    has_exit = layout.exit is None or layout.exit.get(buf) != 0
    return RawModule(
        address=address, name=layout.name.cstr(buf), state=layout.state.get(buf),
        text_base=layout.text_base.get(buf), size=sum(f.get(buf) for f in layout.region_sizes),
        refcnt=layout.refcnt.get_signed(buf) if layout.refcnt else None,
        source_list_next=layout.source_list.get(buf) if layout.source_list else None,
        taints=layout.taints.get(buf) if layout.taints else 0,
        # kernel/module/procfs.c print_unload_info(): "[permanent]" needs
        # CONFIG_MODULE_UNLOAD (where ->exit exists).
        permanent=layout.exit is not None and layout.init is not None and layout.init.get(buf) != 0
        and not has_exit,
        sect_attrs=layout.sect_attrs.get(buf) if layout.sect_attrs else 0,
        list_next=layout.list_next.get(buf),
    )


def state_name(raw: RawModule, layout: ModuleLayout) -> str:
    return dict(layout.states).get(raw.state, str(raw.state))


def listed(raw: RawModule, layout: ModuleLayout) -> bool:
    """/proc/modules leaves out modules still being set up (MODULE_STATE_UNFORMED)."""
    return state_name(raw, layout) != "unformed"


def taint_letters(bits: int) -> str:
    return "".join(c for bit, c in sorted(MODULE_TAINT_LETTERS.items()) if bits >> bit & 1)


def module_holders(raw: RawModule, layout: ModuleLayout, read: Callable[[int, int], bytes],
                   read_u64: Callable[[int], int]) -> list[str]:
    """Names of the modules that use ``raw``, in /proc/modules' order
    (struct module_use entries on its source_list, newest first)."""
    if raw.source_list_next is None or layout.source_list is None:
        return []
    head = raw.address + layout.source_list.offset
    out: list[str] = []
    node = raw.source_list_next
    while node and node != head and len(out) < MAX_ENTRIES:
        source = read_u64(node - layout.use_source_list + layout.use_source)
        out.append(layout.name.cstr(read(source + layout.name.offset, layout.name.size), -layout.name.offset))
        node = read_u64(node)
    return out


def module_record(raw: RawModule, layout: ModuleLayout, holders: list[str]) -> ModuleRecord:
    """The record of one module, as kernel/module/procfs.c m_show() prints it:
    the use count is module_refcount() (refcnt - MODULE_REF_BASE; -1 without
    CONFIG_MODULE_UNLOAD, where /proc/modules prints "-")."""
    return ModuleRecord(name=raw.name, size=raw.size,
                        refcount=raw.refcnt - MODULE_REF_BASE if raw.refcnt is not None else -1,
                        address=raw.text_base, state=state_name(raw, layout), taints=taint_letters(raw.taints),
                        out_of_tree=bool(raw.taints >> TAINT_OOT_MODULE & 1), used_by=holders,
                        permanent=raw.permanent)


def read_cstring(read: Callable[[int, int], bytes], addr: int, limit: int = 256) -> str:
    """A NUL-ended string at ``addr``, read in pieces that stay within a page."""
    out = b""
    while len(out) < limit:
        chunk = read(addr, min(64, 4096 - addr % 4096))
        end = chunk.find(b"\0")
        if end >= 0:
            return (out + chunk[:end]).decode("utf-8", "replace")
        out += chunk
        addr += len(chunk)
    return out[:limit].decode("utf-8", "replace")


def module_sections(raw: RawModule, layout: ModuleLayout, read: Callable[[int, int], bytes],
                    read_u64: Callable[[int], int]) -> dict[str, int]:
    """{section name: address} of a loaded module, what /sys/module/NAME/sections
    shows (empty when the kernel keeps no section attributes)."""
    sl = layout.sections
    if sl is None or not raw.sect_attrs:
        return {}
    if sl.nsections is not None:
        n = sl.nsections.get(read(raw.sect_attrs + sl.nsections.offset, sl.nsections.size), -sl.nsections.offset)
    else:
        assert sl.bin_attrs is not None
        ptrs = read_u64(raw.sect_attrs + sl.bin_attrs.offset)
        n = 0
        while ptrs and n < MAX_ENTRIES and read_u64(ptrs + 8 * n):
            n += 1
    n = min(n, MAX_ENTRIES)
    table = read(raw.sect_attrs + sl.attrs, n * sl.elem_size) if n else b""
    out: dict[str, int] = {}
    for i in range(n):
        base = i * sl.elem_size
        name = read_cstring(read, sl.name.get(table, base))
        out[name] = sl.address.get(table, base)
    return out
