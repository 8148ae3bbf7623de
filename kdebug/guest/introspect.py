"""The running kernel's KASLR offset, read through QMP from its IDT."""

from __future__ import annotations

from pathlib import Path

from kdebug.decode import kaslr
from kdebug.decode.elfsyms import read_vmlinux
from kdebug.errors import DebuggerError


def kaslr_offset_from_qmp(qmp, vmlinux: Path) -> int:
    """The running kernel's KASLR offset from its IDT (the guest must be stopped
    or idle; ``qmp`` is a :class:`kdebug.guest.qmp.Qmp`)."""
    names = [n for pair in kaslr.VECTOR_SYMBOLS for n in pair]
    _, syms = read_vmlinux(vmlinux, names)
    link = kaslr.link_addresses(syms)

    def hmp(line: str) -> str:
        out = qmp.cmd("human-monitor-command", **{"command-line": line})
        return out if isinstance(out, str) else str(out.get("return", ""))

    base = kaslr.parse_idt_base(hmp("info registers"))
    qw = kaslr.parse_qwords(hmp(f"x /4gx {base:#x}"))
    if len(qw) < 4:
        raise DebuggerError("cannot read the guest's IDT through QMP", hint="use --nokaslr")
    runtime = [kaslr.gate_address(qw[0], qw[1]), kaslr.gate_address(qw[2], qw[3])]
    return kaslr.kaslr_offset(runtime, link)
