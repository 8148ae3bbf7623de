"""gdb's remote protocol over a dump (kdebug.decode.rsp): framing, the
commands gdb sends to a stopped target, register packing, and the page
source behind it (kdebug.analysis.dumpstub.DumpMemory) with a fake drgn
program."""

from __future__ import annotations

import struct

import drgn
import pytest

from kdebug.analysis.dumpstub import PAGE, DumpMemory
from kdebug.decode import rsp


def prstatus(pid: int, **regs: int) -> bytes:
    desc = bytearray(336)
    struct.pack_into("<i", desc, 32, pid)
    for i, name in enumerate(rsp.USER_REGS):
        struct.pack_into("<Q", desc, 112 + 8 * i, regs.get(name, 0))
    return bytes(desc)


# --- framing ------------------------------------------------------------------------------

def test_frame_checksums_and_escapes_what_gdb_would_misread():
    assert rsp.frame("OK") == b"$OK#9a"
    raw = b"a#b$c}d*e"
    framed = rsp.frame(raw)
    body = framed[1:framed.index(b"#", len(framed) - 3)]
    assert b"#" not in body and b"$" not in body and b"*" not in body
    assert rsp.unescape(body) == raw
    assert framed.endswith(b"#%02x" % (sum(body) & 0xFF))


def test_reader_splits_packets_across_reads_and_drops_acks_and_interrupts():
    r = rsp.Reader()
    got = list(r.feed(b"+$g#67+$m10,"))
    assert [p.payload for p in got] == [b"g"] and got[0].ok
    got = list(r.feed(b"4#" + (b"%02x" % rsp.checksum(b"m10,4"))[:1]))
    assert got == []  # checksum half there
    got = list(r.feed((b"%02x" % rsp.checksum(b"m10,4"))[1:] + b"\x03$?#00"))
    assert [(p.payload, p.ok) for p in got] == [(b"m10,4", True), (b"?", False)]


def test_reader_unescapes_binary_payloads():
    assert [p.payload for p in rsp.Reader().feed(rsp.frame(b"X}#"))] == [b"X}#"]


# --- registers ----------------------------------------------------------------------------

def test_prstatus_registers_by_name():
    cpu = rsp.parse_prstatus(prstatus(93, rip=0xFFFFFFFFC02E9005, rsp=0xFFFFD1370039BB18, rax=1, gs=0x2B))
    assert cpu.pid == 93
    assert cpu.regs["rip"] == 0xFFFFFFFFC02E9005 and cpu.regs["rsp"] == 0xFFFFD1370039BB18
    assert cpu.regs["rax"] == 1 and cpu.regs["gs"] == 0x2B
    with pytest.raises(ValueError, match="too short"):
        rsp.parse_prstatus(bytes(200))


def test_g_packet_is_gdbs_amd64_order():
    regs = {"rax": 0x1122, "rbx": 2, "rsp": 0xFFFF8000DEAD0000, "r15": 15, "rip": 0xFFFFFFFF81000000,
            "eflags": 0x246, "cs": 0x10, "gs": 0x2B}
    raw = bytes.fromhex(rsp.g_packet(regs))
    assert len(raw) == 16 * 8 + 8 + 7 * 4
    q = struct.unpack_from("<17Q", raw)
    assert q[0] == 0x1122 and q[1] == 2 and q[7] == 0xFFFF8000DEAD0000 and q[15] == 15
    assert q[16] == 0xFFFFFFFF81000000
    assert struct.unpack_from("<7I", raw, 136) == (0x246, 0x10, 0, 0, 0, 0, 0x2B)


# --- commands -----------------------------------------------------------------------------

MEM = {0x1000 + i: i & 0xFF for i in range(0x2000)}  # two readable pages; nothing else


def read(addr: int, size: int) -> bytes:
    out = bytearray()
    for a in range(addr, addr + size):
        if a not in MEM:
            break
        out.append(MEM[a])
    if not out:
        raise rsp.Fault(addr)
    return bytes(out)


def stub(first: int = 1) -> rsp.DumpStub:
    cpus = [rsp.Cpu(0, {"rip": 0x10}), rsp.Cpu(93, {"rip": 0x20})]
    return rsp.DumpStub(cpus, read, first=first)


def ask(s: rsp.DumpStub, cmd: str) -> str | None:
    return s.handle(cmd.encode())


def test_memory_reads_fault_and_stop_short():
    s = stub()
    assert ask(s, "m1000,4") == "00010203"
    assert ask(s, "m500,4") == rsp.EFAULT  # gdb: Cannot access memory at address 0x500
    assert ask(s, "m2ffe,8") == "feff"  # the bytes before the hole
    assert len(ask(s, f"m1000,{rsp.MAX_READ * 4:x}")) == 2 * 0x2000  # bounded by the dump here
    assert ask(s, "m1000,zz") == rsp.EINVAL
    assert ask(s, "m1000,0") == ""


def test_reads_are_bounded_per_packet():
    seen = []
    s = rsp.DumpStub([rsp.Cpu(0, {})], lambda a, n: seen.append(n) or bytes(n))
    ask(s, "m0,1000000")
    assert seen == [rsp.MAX_READ]


def test_threads_are_cpus_and_the_crashed_one_comes_first():
    s = stub(first=1)
    assert ask(s, "?") == "T05thread:2;"
    assert ask(s, "qfThreadInfo") == "m1,2" and ask(s, "qsThreadInfo") == "l"
    assert ask(s, "qC") == "QC2"
    assert bytes.fromhex(rsp.g_packet({"rip": 0x20})) == bytes.fromhex(ask(s, "g"))
    assert ask(s, "Hg1") == "OK" and ask(s, "qC") == "QC1"
    assert struct.unpack_from("<Q", bytes.fromhex(ask(s, "g")), 128)[0] == 0x10
    assert ask(s, "p10") == (0x10).to_bytes(8, "little").hex()  # register 16: rip
    assert ask(s, "Hg0") == "OK" and ask(s, "Hc-1") == "OK" and ask(s, "qC") == "QC1"
    assert ask(s, "Hg3") == "E01" and ask(s, "T3") == "E01" and ask(s, "T2") == "OK"
    assert bytes.fromhex(ask(s, "qThreadExtraInfo,2")) == b"CPU 1"
    assert rsp.DumpStub([rsp.Cpu(0, {})], read, first=7).first == 0  # out of range: CPU 0


def test_a_dump_is_read_only_and_never_runs():
    s = stub()
    for cmd in ("M1000,1:00", "X1000,1:a", "G00", "P10=00"):
        assert ask(s, cmd) == rsp.EROFS
    for cmd in ("c", "s", "vCont;c"):
        assert ask(s, cmd) == "E01"
    assert ask(s, "vCont?") == "" and ask(s, "qTStatus") == "" and ask(s, "vMustReplyEmpty") == ""
    assert "PacketSize=" in ask(s, "qSupported:multiprocess+;swbreak+") and ask(s, "qAttached") == "1"
    with pytest.raises(ValueError):
        rsp.DumpStub([], read)


def test_serve_acks_until_no_ack_mode_and_ends_on_detach():
    incoming = [b"+$qSupported:xmlRegisters=i386#" + b"%02x" % rsp.checksum(b"qSupported:xmlRegisters=i386"),
                rsp.frame("QStartNoAckMode"), b"+", rsp.frame("m1000,2") + b"$g#00", rsp.frame("D"),
                rsp.frame("never read")]
    sent: list[bytes] = []
    s = stub()
    rsp.serve(s, lambda: incoming.pop(0), sent.append)
    assert sent[0].startswith(b"+$PacketSize=")
    assert sent[1] == b"+" + rsp.frame("OK")  # QStartNoAckMode itself is acked
    assert sent[2] == rsp.frame("0001")  # then no acks; the bad checksum is dropped without a "-"
    assert sent[3] == rsp.frame("OK") and s.done and incoming == [rsp.frame("never read")]


def test_serve_naks_a_bad_checksum_and_ends_when_gdb_closes_the_pipe():
    incoming = [b"$g#00", b""]
    sent: list[bytes] = []
    rsp.serve(stub(), lambda: incoming.pop(0), sent.append)
    assert sent == [b"-"] and incoming == []


# --- pages from drgn ----------------------------------------------------------------------

class FakeProgram:
    """Pages 0x10..0x1f of a 'dump' hold data, except 0x14 (excluded)."""

    def __init__(self):
        self.calls: list[tuple[int, int]] = []

    def read(self, addr: int, size: int, physical: bool = False) -> bytes:
        self.calls.append((addr, size))
        for a in range(addr // PAGE, (addr + size - 1) // PAGE + 1):
            if not 0x10 <= a < 0x20 or a == 0x14:
                raise drgn.FaultError("Excluded page", a * PAGE)
        return b"".join(bytes([a & 0xFF]) * PAGE for a in range(addr // PAGE, (addr + size) // PAGE))


def test_pages_are_read_in_runs_and_cached():
    prog = FakeProgram()
    mem = DumpMemory(prog, ahead=4)
    assert mem.read(0x15 * PAGE + 10, 3) == b"\x15" * 3
    assert prog.calls == [(0x15 * PAGE, 4 * PAGE)]
    assert mem.read(0x18 * PAGE, 2 * PAGE) == b"\x18" * PAGE + b"\x19" * PAGE  # 0x18 cached, 0x19 read
    assert prog.calls[1:] == [(0x19 * PAGE, 4 * PAGE)]


def test_an_excluded_page_is_a_fault_never_zeros():
    prog = FakeProgram()
    mem = DumpMemory(prog, ahead=8)
    with pytest.raises(rsp.Fault):
        mem.read(0x14 * PAGE + 8, 8)
    # A run over the excluded page falls back to single pages: the one before reads.
    assert mem.read(0x13 * PAGE + PAGE - 4, 16) == b"\x13" * 4
    with pytest.raises(rsp.Fault):
        mem.read(0xFFFFFFFFFFFFF000, 0x2000)  # the top of the address space, no wrap


def test_the_cache_is_bounded():
    prog = FakeProgram()
    mem = DumpMemory(prog, cache_pages=3, ahead=1)
    for p in range(0x10, 0x14):
        mem.read(p * PAGE, 1)
    assert len(mem._pages) == 3
    mem.read(0x10 * PAGE, 1)
    assert len(prog.calls) == 5  # 0x10 was dropped and read again
