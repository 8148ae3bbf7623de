"""VMCOREINFO as a source of kernel facts (pure): the third engine behind
kdebug.decode's layouts, beside gdb's and drgn's debug info, for a dump whose
debug info is not at hand.

The kernel writes into VMCOREINFO (kernel/vmcore_info.c, before v6.9
kernel/crash_core.c) the addresses, sizes and member offsets that makedumpfile
and crash need without a vmlinux: ``SYMBOL(prb)=ffffffff...`` (runtime
addresses, KASLR applied), ``SIZE(printk_info)=88``,
``OFFSET(printk_info.seq)=0``. It names members but not their types, so a
member's size and the struct type of a nested member come from the C
declarations below, each from the header that declares it.
"""

from __future__ import annotations

from collections.abc import Mapping

from kdebug.decode.structs import Field

#: (struct, member) -> (size in bytes, struct type of the member when a dotted
#: path goes through it). kernel/printk/printk_ringbuffer.h since 896fbe20b4e2
#: ("printk: use the lockless ringbuffer") (in v5.10); include/linux/dev_printk.h.
MEMBERS: dict[tuple[str, str], tuple[int, str | None]] = {
    ("printk_ringbuffer", "desc_ring"): (0, "prb_desc_ring"),
    ("printk_ringbuffer", "text_data_ring"): (0, "prb_data_ring"),
    ("printk_ringbuffer", "fail"): (8, "atomic_long_t"),
    ("prb_desc_ring", "count_bits"): (4, None),  # unsigned int
    ("prb_desc_ring", "descs"): (8, None),  # struct prb_desc *
    ("prb_desc_ring", "infos"): (8, None),  # struct printk_info *
    ("prb_desc_ring", "head_id"): (8, "atomic_long_t"),
    ("prb_desc_ring", "tail_id"): (8, "atomic_long_t"),
    ("prb_data_ring", "size_bits"): (4, None),  # unsigned int
    ("prb_data_ring", "data"): (8, None),  # char *
    ("prb_data_ring", "head_lpos"): (8, "atomic_long_t"),
    ("prb_data_ring", "tail_lpos"): (8, "atomic_long_t"),
    ("prb_desc", "state_var"): (8, "atomic_long_t"),
    ("prb_desc", "text_blk_lpos"): (16, "prb_data_blk_lpos"),
    ("prb_data_blk_lpos", "begin"): (8, None),  # unsigned long
    ("prb_data_blk_lpos", "next"): (8, None),
    ("printk_info", "seq"): (8, None),  # u64
    ("printk_info", "ts_nsec"): (8, None),  # u64
    ("printk_info", "text_len"): (2, None),  # u16
    ("printk_info", "caller_id"): (4, None),  # u32
    ("atomic_long_t", "counter"): (8, None),  # s64 on 64-bit
    ("uts_namespace", "name"): (390, None),  # struct new_utsname: six char[65]
}

#: struct printk_info's members VMCOREINFO leaves out, placed after text_len
#: as printk_ringbuffer.h declares them: ``u16 text_len; u8 facility;
#: u8 flags:5; u8 level:3;`` (little-endian bitfields fill from bit 0).
_AFTER_TEXT_LEN = {"facility": (2, 0, 0), "level": (3, 5, 3)}  # byte after text_len, bitpos, bits


class VmcoreinfoDebuginfo:
    """kdebug.decode.structs.Debuginfo over a dump's VMCOREINFO: offsets,
    sizes and symbol addresses the kernel wrote for the dump's readers."""

    def __init__(self, vmcoreinfo: Mapping[str, str]) -> None:
        self.vmcoreinfo = vmcoreinfo

    def _number(self, key: str) -> int | None:
        v = self.vmcoreinfo.get(key)
        try:
            return int(v) if v is not None else None
        except ValueError:
            return None

    def member(self, type_name: str, path: str) -> Field | None:
        t = _bare(type_name)
        offset = 0
        field = None
        for part in path.split("."):
            if t is None:
                return None
            if t == "printk_info" and part in _AFTER_TEXT_LEN:
                base = self._number("OFFSET(printk_info.text_len)")
                if base is None:
                    return None
                delta, bitpos, bits = _AFTER_TEXT_LEN[part]
                return Field(offset + base + delta, 1, bitpos, bits)
            off = 0 if t == "atomic_long_t" and part == "counter" else self._number(f"OFFSET({t}.{part})")
            known = MEMBERS.get((t, part))
            if off is None or known is None:
                return None
            size, t = known[0], known[1]
            offset += off
            field = Field(offset, size)
        if field is not None and field.size == 0 and t is not None:  # an embedded struct
            field = Field(field.offset, self.sizeof(t) if self.vmcoreinfo.get(f"SIZE({t})") else 0)
        return field

    def sizeof(self, type_name: str) -> int:
        t = _bare(type_name)
        if t == "atomic_long_t" and f"SIZE({t})" not in self.vmcoreinfo:
            return 8
        n = self._number(f"SIZE({t})")
        if n is None:
            raise LookupError(f"VMCOREINFO has no SIZE({t})")
        return n

    def enumerator(self, name: str) -> int | None:
        return self._number(f"NUMBER({name})")

    def symbol(self, name: str) -> int | None:
        """A symbol's runtime address (``SYMBOL(name)``), or None."""
        v = self.vmcoreinfo.get(f"SYMBOL({name})")
        try:
            return int(v, 16) if v else None
        except ValueError:
            return None


def _bare(type_name: str) -> str:
    return type_name.removeprefix("struct ").strip()


#: kernel/panic.c taint_flags[]: the letter of each TAINT_* bit, in bit order
#: (bit 0 prints G when clear). Later kernels append bits; an unknown set bit is "?".
TAINT_LETTERS = "PFSRMBUDAWCIOELKXTN"


def taint_letters(mask: int) -> str:
    """``tainted_mask`` as the letters print_tainted() shows, without its
    padding ("" when not tainted): "G" or "P", then each set flag's letter."""
    if not mask:
        return ""
    out = ["P" if mask & 1 else "G"]
    for bit in range(1, mask.bit_length()):
        if mask >> bit & 1:
            out.append(TAINT_LETTERS[bit] if bit < len(TAINT_LETTERS) else "?")
    return "".join(out)


#: struct new_utsname (include/uapi/linux/utsname.h): six char[__NEW_UTS_LEN + 1].
UTS_FIELDS = ("sysname", "nodename", "release", "version", "machine", "domainname")
UTS_LEN = 65


def utsname(raw: bytes) -> dict[str, str]:
    """struct new_utsname's strings from its bytes."""
    return {name: raw[i * UTS_LEN:(i + 1) * UTS_LEN].split(b"\0", 1)[0].decode("utf-8", "replace")
            for i, name in enumerate(UTS_FIELDS)}
