"""gdb's remote serial protocol, the stub side, for a machine that never runs
again: a dump (pure: standard library only).

gdb talks to a stub in packets ``$payload#xx`` (``xx``: the sum of the
payload's bytes mod 256, two hex digits), each acknowledged with ``+`` (or
``-``: send it again) until both sides agree on ``QStartNoAckMode``. In a
payload ``}`` escapes the byte that follows (XOR 0x20), and ``*`` starts a
run-length repeat, so a reply that holds either must escape it.

:class:`DumpStub` answers what gdb asks of a stopped target: its threads
(one per CPU, ids 1..N as QEMU's gdbstub gives them), each thread's
registers (``g``, gdb's amd64 layout: 16 general registers, rip, then
eflags and the six segment selectors as 32-bit values; a shorter ``g``
leaves the rest unavailable) and memory by virtual address (``m``). A read
that starts on memory the dump does not hold answers ``E14`` (EFAULT), which
gdb reports as "Cannot access memory at address ..."; one that runs into
such memory answers the bytes before it, as gdb allows. Nothing can be
written, and the target cannot be resumed.

The protocol: gdb's manual, "Remote Protocol" (Overview, Packets, Stop
Reply Packets, General Query Packets).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

#: gdb asks for at most this much memory per ``m`` (its hex reply is twice as long).
MAX_READ = 0x8000
PACKET_SIZE = 2 * MAX_READ + 64
EFAULT = "E14"
EINVAL = "E16"
EROFS = "E1e"
NT_PRSTATUS = 1

# struct elf_prstatus (x86-64): pr_pid at 32, pr_reg (struct user_regs_struct) at 112.
_PRSTATUS_PID = 32
_PRSTATUS_REG = 112
USER_REGS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
             "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
             "gs_base", "ds", "es", "fs", "gs")
#: gdb's amd64 register numbers 0..23 that a ``g`` packet carries, with their sizes.
AMD64_G = (tuple((r, 8) for r in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                                   "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip"))
           + tuple((r, 4) for r in ("eflags", "cs", "ss", "ds", "es", "fs", "gs")))


class Fault(Exception):
    """Memory the dump does not hold (excluded, or never mapped)."""


@dataclass(frozen=True)
class Cpu:
    """One CPU's registers as the dump saved them (its NT_PRSTATUS note)."""

    pid: int  # the task that ran there (pr_pid)
    regs: dict[str, int]


def parse_prstatus(desc: bytes) -> Cpu:
    """An x86-64 NT_PRSTATUS note's descriptor."""
    if len(desc) < _PRSTATUS_REG + 8 * len(USER_REGS):
        raise ValueError(f"NT_PRSTATUS of {len(desc)} bytes is too short for x86-64")
    (pid,) = struct.unpack_from("<i", desc, _PRSTATUS_PID)
    values = struct.unpack_from(f"<{len(USER_REGS)}Q", desc, _PRSTATUS_REG)
    return Cpu(pid, dict(zip(USER_REGS, values, strict=True)))


def g_packet(regs: dict[str, int]) -> str:
    """The hex of a ``g`` reply: gdb's amd64 registers 0..23."""
    return "".join((regs.get(name, 0) & ((1 << 8 * size) - 1)).to_bytes(size, "little").hex()
                   for name, size in AMD64_G)


# --- framing ------------------------------------------------------------------------

_ESCAPED = re.compile(rb"[#$}*]")


def checksum(payload: bytes) -> int:
    return sum(payload) & 0xFF


def escape(payload: bytes) -> bytes:
    return _ESCAPED.sub(lambda m: bytes((0x7D, m[0][0] ^ 0x20)), payload)


def unescape(payload: bytes) -> bytes:
    out, it = bytearray(), iter(payload)
    for b in it:
        out.append(next(it, 0) ^ 0x20 if b == 0x7D else b)
    return bytes(out)


def frame(payload: str | bytes) -> bytes:
    """``$payload#xx`` with the payload escaped."""
    raw = escape(payload.encode("latin-1") if isinstance(payload, str) else payload)
    return b"$" + raw + b"#%02x" % checksum(raw)


@dataclass(frozen=True)
class Packet:
    payload: bytes  # unescaped
    ok: bool  # its checksum matched


class Reader:
    """Splits what gdb sends into packets; acks (``+``/``-``) and the
    interrupt byte (0x03) between packets are dropped (a dump never runs)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> Iterator[Packet]:
        self._buf += data
        while True:
            start = self._buf.find(b"$")
            if start < 0:
                self._buf = b""
                return
            end = self._buf.find(b"#", start)
            if end < 0 or len(self._buf) < end + 3:
                self._buf = self._buf[start:]
                return
            raw, want = self._buf[start + 1:end], self._buf[end + 1:end + 3]
            self._buf = self._buf[end + 3:]
            try:
                ok = int(want, 16) == checksum(raw)
            except ValueError:
                ok = False
            yield Packet(unescape(raw), ok)


# --- commands ------------------------------------------------------------------------

ReadMemory = Callable[[int, int], bytes]


class DumpStub:
    """Answers gdb's packets about a stopped machine: ``cpus`` (thread
    ``i + 1`` is ``cpus[i]``), ``read`` (virtual address, size -> the bytes
    the dump holds from there on, possibly fewer; raises :class:`Fault` when
    it holds none), ``first``: the CPU gdb selects first (the one that crashed)."""

    def __init__(self, cpus: list[Cpu], read: ReadMemory, first: int = 0) -> None:
        if not cpus:
            raise ValueError("a dump without CPU registers (no NT_PRSTATUS note)")
        self.cpus, self.read = cpus, read
        self.first = first if 0 <= first < len(cpus) else 0
        self.thread = self.first + 1
        self.no_ack = False
        self.done = False  # gdb killed or detached: the stub should exit

    def handle(self, payload: bytes) -> str | None:
        """The reply to one packet (``""``: unsupported), or None for none."""
        text = payload.decode("latin-1")
        cmd = text[:1]
        try:
            if cmd == "m":
                return self._read_memory(text[1:])
            if cmd == "g":
                return g_packet(self.cpus[self.thread - 1].regs)
            if cmd == "p":
                return self._register(int(text[1:], 16))
            if cmd == "H":
                return self._set_thread(text[2:])
            if cmd == "T":
                return "OK" if self._tid(text[1:]) else "E01"
            if cmd == "?":
                return f"T05thread:{self.first + 1:x};"
            if cmd in "MXGP":
                return EROFS  # a dump is read-only
            if cmd in "cCsSiI" or text.startswith("vCont;"):
                return "E01"  # a dump never runs again
            if cmd == "k":
                self.done = True
                return None
            if cmd == "D":
                self.done = True
                return "OK"
            if cmd == "q" or cmd == "Q":
                return self._query(text)
        except ValueError:
            return EINVAL
        return ""

    def _query(self, text: str) -> str:
        name, _, args = text.partition(":")
        if name == "qSupported":
            return f"PacketSize={PACKET_SIZE:x};QStartNoAckMode+;qXfer:features:read-"
        if name == "QStartNoAckMode":
            self.no_ack = True
            return "OK"
        if text == "qfThreadInfo":
            return "m" + ",".join(f"{i + 1:x}" for i in range(len(self.cpus)))
        if text == "qsThreadInfo":
            return "l"
        if text == "qC":
            return f"QC{self.thread:x}"
        if text == "qAttached":
            return "1"  # quitting gdb detaches: there is nothing to kill
        if text.startswith("qThreadExtraInfo,"):
            tid = self._tid(text.split(",", 1)[1])
            return f"CPU {tid - 1}".encode().hex() if tid else "E01"
        if text == "qSymbol::":
            return "OK"
        return ""

    def _tid(self, s: str) -> int | None:
        """A thread id gdb named, if it is one of ours (``p1.2`` form too)."""
        if s.startswith("p"):
            s = s.partition(".")[2] or "1"
        tid = int(s, 16)
        return tid if 1 <= tid <= len(self.cpus) else None

    def _set_thread(self, s: str) -> str:
        if s in ("0", "-1"):
            return "OK"  # any thread: keep the one selected
        tid = self._tid(s)
        if tid is None:
            return "E01"
        self.thread = tid
        return "OK"

    def _register(self, n: int) -> str:
        if n >= len(AMD64_G):
            return "E01"
        name, size = AMD64_G[n]
        return (self.cpus[self.thread - 1].regs.get(name, 0) & ((1 << 8 * size) - 1)).to_bytes(size, "little").hex()

    def _read_memory(self, args: str) -> str:
        addr, _, size = args.partition(",")
        a, n = int(addr, 16), int(size, 16)
        if n == 0:
            return ""
        try:
            data = self.read(a, min(n, MAX_READ))
        except Fault:
            return EFAULT
        return data.hex() if data else EFAULT


def serve(stub: DumpStub, recv: Callable[[], bytes], send: Callable[[bytes], None]) -> None:
    """Answer packets until gdb kills or detaches, or closes the line (``recv`` -> b"")."""
    reader = Reader()
    while not stub.done:
        data = recv()
        if not data:
            return
        for pkt in reader.feed(data):
            if not pkt.ok:
                if not stub.no_ack:
                    send(b"-")
                continue
            ack = b"" if stub.no_ack else b"+"  # QStartNoAckMode itself is still acked
            reply = stub.handle(pkt.payload)
            out = ack
            if reply is not None:
                out += frame(reply)
            if out:
                send(out)
            if stub.done:
                return
