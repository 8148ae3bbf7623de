"""gdb on any dump drgn reads: a remote-protocol stub for a dump.

kdebug starts it on a Unix socket it made in its private runtime directory
(``--fd``: the listening socket, already bound, so gdb cannot come first),
and gdb connects with ``target remote SOCKET``: one connection, no port. By
hand it also runs as gdb's pipe target:

    (gdb) target remote | python -m kdebug.analysis.dumpstub VMCORE [--vmlinux FILE]

but gdb reads a pipe one syscall per byte (it polls the child's stderr
after every character: gdb/ser-base.c generic_readchar), which makes a
4 KiB read cost ~35 ms where the socket takes ~0.9 ms.

Memory comes from drgn, by virtual address: drgn walks the kernel's page
tables in the dump (ELF, or kdump-compressed through libkdumpfile with any
compression makedumpfile writes), so module text, vmalloc'd data and vmap'd
stacks are there as on the live machine, and nothing of the dump is copied
to disk. A page the dump left out (makedumpfile -d) is a fault drgn raises,
which gdb shows as "Cannot access memory at address ...", never as zeros.
Pages are read in runs and kept in a bounded cache. Registers come from the
dump's NT_PRSTATUS notes (kdebug.vmcore.notes), one gdb thread per CPU; gdb
starts on the CPU that crashed (``panic_cpu``). The stub exits when gdb
closes the connection, or, before gdb connects, when its stdin closes (the
kdebug that started it is gone). The protocol itself is kdebug.decode.rsp.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import sys
from collections import OrderedDict
from pathlib import Path

import drgn

from kdebug.decode import rsp
from kdebug.decode.elfsyms import ElfSymsError, read_vmlinux
from kdebug.errors import KdebugError
from kdebug.vmcore.info import identify
from kdebug.vmcore.notes import prstatus_descs

PAGE = 4096
#: Pages read at once on a miss (one drgn read), and pages kept (16 MiB).
READ_AHEAD = 16
CACHE_PAGES = 4096
_TOP = 1 << 64


class DumpMemory:
    """Virtual memory of a drgn program, a page at a time: ``None`` for a page
    the dump does not hold. Every read costs at most one run of pages."""

    def __init__(self, prog: drgn.Program, cache_pages: int = CACHE_PAGES, ahead: int = READ_AHEAD) -> None:
        self.prog, self.cache_pages, self.ahead = prog, cache_pages, ahead
        self._pages: OrderedDict[int, bytes | None] = OrderedDict()

    def _try(self, addr: int, size: int) -> bytes | None:
        try:
            return self.prog.read(addr, size)
        except (drgn.FaultError, ValueError, OverflowError):
            return None

    def _keep(self, page: int, data: bytes | None) -> None:
        self._pages[page] = data
        if len(self._pages) > self.cache_pages:
            self._pages.popitem(last=False)

    def page(self, page: int) -> bytes | None:
        if page in self._pages:
            self._pages.move_to_end(page)
            return self._pages[page]
        n = min(self.ahead, (_TOP - page) // PAGE)
        run = self._try(page, n * PAGE) if n > 1 else None
        if run is not None:
            for i in range(n):
                self._keep(page + i * PAGE, run[i * PAGE:(i + 1) * PAGE])
            return run[:PAGE]
        data = self._try(page, PAGE)  # some page of the run is not in the dump: this one alone
        self._keep(page, data)
        return data

    def read(self, addr: int, size: int) -> bytes:
        """The bytes the dump holds from ``addr`` on (fewer at a missing page);
        :class:`rsp.Fault` when it holds none."""
        out = bytearray()
        end = min(addr + size, _TOP)
        while addr < end:
            base = addr & ~(PAGE - 1)
            data = self.page(base)
            if data is None:
                break
            take = min(end - base, PAGE)
            out += data[addr - base:take]
            addr = base + take
        if not out:
            raise rsp.Fault(addr)
        return bytes(out)


def panic_cpu(memory: DumpMemory, vmlinux: Path | None, kaslr_offset: int) -> int | None:
    """The CPU that crashed: ``panic_cpu`` (kernel/panic.c), which crash_kexec()
    and panic() claim before the dump is taken (since v4.5, 7bbee5ca3896
    "kexec: Fix race between panic() and crash_kexec()")."""
    if vmlinux is None:
        return None
    try:
        _, syms = read_vmlinux(vmlinux, ["panic_cpu"])
    except (OSError, ElfSymsError):
        return None
    if "panic_cpu" not in syms:
        return None
    try:
        return int.from_bytes(memory.read(syms["panic_cpu"] + kaslr_offset, 4), "little", signed=True)
    except rsp.Fault:
        return None


def open_stub(path: Path, vmlinux: Path | None = None) -> rsp.DumpStub:
    """The stub over the dump at ``path`` (ELF or kdump-compressed)."""
    info = identify(path)
    if info.format not in ("elf", "kdump"):
        raise KdebugError(f"{path}: a {info.format} dump cannot be read here (reassemble it with makedumpfile -R)")
    cpus = []
    for desc in prstatus_descs(info.path, info.format):
        try:
            cpus.append(rsp.parse_prstatus(desc))
        except ValueError as e:
            raise KdebugError(f"{path}: {e}") from None
    if not cpus:
        raise KdebugError(f"{path} holds no CPU registers (no NT_PRSTATUS note)")
    prog = drgn.Program()
    try:
        prog.set_core_dump(str(info.path))
    except (ValueError, OSError, drgn.FaultError) as e:
        raise KdebugError(f"drgn cannot open {path}: {e}") from None
    memory = DumpMemory(prog)
    first = panic_cpu(memory, vmlinux, int(info.vmcoreinfo.get("KERNELOFFSET", "0"), 16))
    return rsp.DumpStub(cpus, memory.read, first=first if first is not None else 0)


def _send(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]


def _accept(listener: socket.socket) -> socket.socket | None:
    """gdb's connection, or None when stdin closes first (kdebug is gone)."""
    while True:
        ready, _, _ = select.select([listener, 0], [], [])
        if listener in ready:
            conn, _ = listener.accept()
            listener.close()
            return conn
        if not os.read(0, 4096):
            return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kdebug.analysis.dumpstub",
                                description="gdb remote target over a dump: target remote | THIS VMCORE")
    p.add_argument("vmcore", type=Path)
    p.add_argument("--vmlinux", type=Path, help="to find the CPU that crashed (panic_cpu)")
    p.add_argument("--fd", type=int, help="a listening Unix socket: serve the one connection on it "
                                          "(default: gdb's pipe on stdin and stdout)")
    a = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # gdb's Ctrl-C is gdb's
    # In pipe mode fd 1 is gdb's line: nothing else may write there. drgn's
    # plugins (its own commands, a user's) are not needed to read memory,
    # and loading them costs 0.7 s before gdb's first packet.
    sys.stdout = sys.stderr
    os.environ["DRGN_DISABLE_PLUGINS"] = "*"
    listener = socket.socket(fileno=a.fd) if a.fd is not None else None
    try:
        stub = open_stub(a.vmcore, a.vmlinux)
    except KdebugError as e:
        print(f"kdebug dumpstub: {e}", file=sys.stderr)
        return 1
    try:
        if listener is None:
            rsp.serve(stub, lambda: os.read(0, 1 << 16), _send)
            return 0
        conn = _accept(listener)
        if conn is not None:
            with conn:
                rsp.serve(stub, lambda: conn.recv(1 << 16), conn.sendall)
    except (BrokenPipeError, ConnectionResetError):
        pass  # gdb went away
    return 0


if __name__ == "__main__":
    sys.exit(main())
