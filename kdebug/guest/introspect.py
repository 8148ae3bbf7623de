"""The running kernel's KASLR offset, read through QMP from its IDT."""

from __future__ import annotations

import os
import re
from pathlib import Path

from kdebug.decode import kaslr
from kdebug.decode.elfsyms import read_vmlinux
from kdebug.errors import DebuggerError


def kaslr_offset_from_qmp(qmp, vmlinux: Path) -> int:
    """The running kernel's KASLR offset from its IDT (the guest must be stopped
    or idle; ``qmp`` is a :class:`kdebug.guest.qmp.Qmp`)."""
    return kaslr_offset_at(qmp, kaslr_link_addresses(vmlinux))


def kaslr_link_addresses(vmlinux: Path) -> list[int]:
    """Where the vmlinux links the IDT vectors' handlers (read once for polls)."""
    names = [n for pair in kaslr.VECTOR_SYMBOLS for n in pair]
    _, syms = read_vmlinux(vmlinux, names)
    return kaslr.link_addresses(syms)


def kaslr_offset_at(qmp, link: list[int]) -> int:
    """The offset the guest's IDT gives against ``link``. Before trap_init()
    the early handlers disagree with the vmlinux and this raises, so a caller
    may poll it while the guest boots."""

    def hmp(line: str) -> str:
        out = qmp.cmd("human-monitor-command", **{"command-line": line})
        return out if isinstance(out, str) else str(out.get("return", ""))

    base = kaslr.parse_idt_base(hmp("info registers"))
    qw = kaslr.parse_qwords(hmp(f"x /4gx {base:#x}"))
    if len(qw) < 4:
        raise DebuggerError("cannot read the guest's IDT through QMP", hint="use --nokaslr")
    runtime = [kaslr.gate_address(qw[0], qw[1]), kaslr.gate_address(qw[2], qw[3])]
    return kaslr.kaslr_offset(runtime, link)


def _signed(addr: int) -> int:
    """QMP integers are signed 64-bit: kernel addresses go as negatives."""
    return addr - (1 << 64) if addr >= 1 << 63 else addr


def read_vmcoreinfo(qmp, vmlinux: Path, offset: int, out: Path) -> tuple[bytes, int]:
    """The running kernel's VMCOREINFO (as its dumps carry it) and its
    guest-physical address, through the monitor: the vmlinux gives where the
    ``vmcoreinfo_data`` pointer lives (plus the KASLR ``offset``), HMP `x`
    reads it, QMP memsave copies the buffer to ``out`` (created 0600 first).
    Nothing runs in the guest and it needs no fw_cfg module."""
    _, syms = read_vmlinux(vmlinux, ["vmcoreinfo_data", "vmcoreinfo_size"])
    if "vmcoreinfo_data" not in syms or "vmcoreinfo_size" not in syms:
        raise DebuggerError(f"{vmlinux} has no vmcoreinfo_data (a kernel without CONFIG_CRASH_CORE)")

    def qword(addr: int) -> int:
        out = qmp.cmd("human-monitor-command", **{"command-line": f"x /1gx {addr:#x}"})
        q = kaslr.parse_qwords(out if isinstance(out, str) else "")
        if not q:
            raise DebuggerError(f"cannot read guest memory at {addr:#x} through QMP: {str(out).strip()[:80]}")
        return q[0]

    buf, size = qword(syms["vmcoreinfo_data"] + offset), qword(syms["vmcoreinfo_size"] + offset)
    if not buf or not 0 < size <= 1 << 16:
        raise DebuggerError("the guest's vmcoreinfo is not set up yet (too early in boot?)")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    qmp.cmd("memsave", val=_signed(buf), size=size, filename=str(out))
    data = out.read_bytes()
    gpa = qmp.cmd("human-monitor-command", **{"command-line": f"gva2gpa {buf:#x}"})
    m = re.search(r"gpa: (0x[0-9a-f]+)", gpa if isinstance(gpa, str) else "")
    if len(data) != size or not data.startswith(b"OSRELEASE=") or not m:
        raise DebuggerError("the guest's vmcoreinfo could not be read through QMP")
    return data, int(m.group(1), 16)
