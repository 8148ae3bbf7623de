"""KASLR offset from QEMU's monitor output (recorded from a Debian 6.1 guest
whose /proc/kallsyms put _stext at 0xffffffff81000000 + 0x35e00000)."""

import struct

import pytest

from kdebug.decode import kaslr
from kdebug.errors import DebuggerError
from tests.conftest import FIXTURES

# Link-time addresses from that kernel's System.map.
LINK = {"asm_exc_divide_error": 0xFFFFFFFF81C00990, "asm_exc_debug": 0xFFFFFFFF81C00C70}


def test_offset_from_recorded_monitor_output():
    base = kaslr.parse_idt_base((FIXTURES / "gdb/info-registers.txt").read_text())
    assert base == 0xFFFFFE0000000000
    qw = kaslr.parse_qwords((FIXTURES / "gdb/x-idt.txt").read_text())
    assert len(qw) == 4
    runtime = [kaslr.gate_address(qw[0], qw[1]), kaslr.gate_address(qw[2], qw[3])]
    assert runtime == [0xFFFFFFFFB7A00990, 0xFFFFFFFFB7A00C70]
    assert kaslr.kaslr_offset(runtime, kaslr.link_addresses(LINK)) == 0x35E00000


def test_gate_bytes_roundtrip():
    addr = 0xFFFFFFFF8A1B2C3D
    lo = (addr & 0xFFFF) | (0x10 << 16) | (0x8E00 << 32) | ((addr >> 16) & 0xFFFF) << 48
    hi = addr >> 32
    raw = struct.pack("<QQ", lo, hi) * 2
    assert kaslr.gate_addresses(raw) == [addr, addr]


def test_older_kernels_names():
    assert kaslr.link_addresses({"divide_error": 1, "debug": 2}) == [1, 2]


def test_nokaslr_is_zero():
    assert kaslr.kaslr_offset([0xFFFFFFFF81C00990, 0xFFFFFFFF81C00C70], list(LINK.values())) == 0


@pytest.mark.parametrize("runtime", [
    [0xFFFFFFFFB7A00990, 0xFFFFFFFFB7C00C70],  # vectors disagree
    [0xFFFFFFFF81C00991, 0xFFFFFFFF81C00C71],  # not a multiple of 2 MiB
])
def test_implausible_offsets_are_refused(runtime):
    with pytest.raises(DebuggerError):
        kaslr.kaslr_offset(runtime, list(LINK.values()))


def test_missing_idt_and_symbols():
    with pytest.raises(DebuggerError, match="IDT"):
        kaslr.parse_idt_base("RAX=0")
    with pytest.raises(DebuggerError, match="nokaslr"):
        kaslr.link_addresses({})
