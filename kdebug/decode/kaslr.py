"""The KASLR offset of a running x86-64 kernel, from its interrupt table.

The IDT holds the runtime addresses of the exception entry points; the
vmlinux holds their link-time addresses; the difference is the offset of the
randomized kernel text (and data). QEMU reveals the IDT base (`info
registers`) and its contents (`x`) through the monitor, so this needs neither
the guest's cooperation nor kallsyms. Per-cpu symbols are offsets inside
.data..percpu (linked at 0 on x86-64 SMP) and are not relocated.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping

from kdebug.errors import DebuggerError

#: Entry points of IDT vectors 0 (#DE) and 1 (#DB), newest name first.
#: Since Linux kernel commit 9d06c4027f21 ("x86/entry: Convert Divide Error to
#: IDTENTRY") (in v5.8) they are asm_exc_*; before, divide_error and debug.
VECTOR_SYMBOLS = (("asm_exc_divide_error", "divide_error"), ("asm_exc_debug", "debug"))
ALIGN = 0x200000  # CONFIG_PHYSICAL_ALIGN's minimum on x86-64: offsets are multiples of it

_IDT = re.compile(r"^IDT=\s*([0-9a-fA-F]+)\s+([0-9a-fA-F]+)", re.M)
_XLINE = re.compile(r"^([0-9a-fA-F]+):((?:\s+0x[0-9a-fA-F]+)+)\s*$", re.M)


def parse_idt_base(info_registers: str) -> int:
    """IDT base from the monitor's `info registers` (first CPU)."""
    m = _IDT.search(info_registers)
    if not m:
        raise DebuggerError("QEMU's `info registers` shows no IDT line")
    return int(m.group(1), 16)


def parse_qwords(x_output: str) -> list[int]:
    """Values of the monitor's `x /Ngx ADDR` output, in order."""
    out = []
    for m in _XLINE.finditer(x_output):
        out.extend(int(v, 16) for v in m.group(2).split())
    return out


def gate_address(lo: int, hi: int) -> int:
    """Handler address of a 16-byte x86-64 interrupt gate (two qwords)."""
    return (lo & 0xFFFF) | ((lo >> 48) & 0xFFFF) << 16 | (hi & 0xFFFFFFFF) << 32


def gate_addresses(raw: bytes) -> list[int]:
    """Handler addresses of consecutive gates in raw IDT bytes."""
    return [gate_address(*struct.unpack_from("<QQ", raw, i)) for i in range(0, len(raw) - 15, 16)]


def link_addresses(symbols: Mapping[str, int]) -> list[int]:
    """Link-time addresses of the vector 0 and 1 entry points."""
    out = []
    for names in VECTOR_SYMBOLS:
        addr = next((symbols[n] for n in names if n in symbols), None)
        if addr is None:
            raise DebuggerError(f"vmlinux has none of {', '.join(names)}: cannot compute the KASLR offset",
                                hint="boot with --nokaslr")
        out.append(addr)
    return out


def kaslr_offset(runtime: list[int], link: list[int]) -> int:
    """The offset both vectors agree on; an error when they do not."""
    offsets = {(r - k) & (2**64 - 1) for r, k in zip(runtime, link, strict=True)}
    if len(offsets) != 1:
        raise DebuggerError("the IDT entries disagree about the KASLR offset (IDT not set up yet?)",
                            hint="let the guest boot further, or use --nokaslr")
    off = offsets.pop()
    if off >= 2**63:
        off -= 2**64
    if off % ALIGN or abs(off) >= 2**31:
        raise DebuggerError(f"implausible KASLR offset {off:#x} (the vmlinux may not match the kernel)",
                            hint="check --vmlinux, or use --nokaslr")
    return off
