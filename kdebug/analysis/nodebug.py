"""A dump read with drgn and no debug info at all: memory through the page
tables VMCOREINFO names, symbols from the kernel's own kallsyms, and kernel
facts through kdebug.decode's VMCOREINFO layouts (the same decoders gdb and
the full report's drgn use), never through types.

drgn 0.3.0 opens a kernel core without a vmlinux (``set_core_dump``) and
builds a symbol table from the kallsyms tables VMCOREINFO locates
(``load_vmlinux_kallsyms``; those entries came with 5fd8fea935a1
("vmcoreinfo: include kallsyms symbols") in v6.0). It cannot unwind or name
tasks without types (``crashed_thread()`` looks up ``runqueues``), so a
stack here is the one the kernel printed, and the registers are named by
kallsyms only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import drgn
from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

from kdebug.decode.printk import read_ring
from kdebug.decode.vmcoreinfo import VmcoreinfoDebuginfo, taint_letters, utsname
from kdebug.errors import PostmortemError
from kdebug.model import FrameRecord, PrintkRecord

#: What a read of a fact can raise on a dump that lacks it: the fact is
#: missing, not the report. drgn's kallsyms loader raises MissingDebugInfoError
#: when VMCOREINFO names no kallsyms tables (CONFIG_KALLSYMS=n, or before v6.0).
READ_ERRORS = (drgn.FaultError, LookupError, ValueError, OverflowError, drgn.MissingDebugInfoError)
DRGN_VERSION = drgn.__version__


@dataclass
class KernelFacts:
    """What the dump says without debug info (None / "" where it cannot)."""

    kallsyms: bool  # the kernel's symbol table was read (CONFIG_KALLSYMS and VMCOREINFO's entries)
    log: list[PrintkRecord] = field(default_factory=list)
    uts: dict[str, str] = field(default_factory=dict)
    cmdline: str = ""
    taint: str | None = None
    panic_cpu: int | None = None  # kernel/panic.c panic_cpu, -1 before a panic
    cpus: int = 0
    memory_kb: int = 0
    warnings: list[str] = field(default_factory=list)


class NoDebugProgram:
    """drgn over a dump with only VMCOREINFO and kallsyms."""

    def __init__(self, path: Path, vmcoreinfo: Mapping[str, str]) -> None:
        self.prog = drgn.Program()
        logging.getLogger("drgn").setLevel(logging.ERROR)
        try:
            self.prog.set_core_dump(str(path))
        except (ValueError, OSError, drgn.FaultError, LookupError) as e:
            raise PostmortemError(f"drgn cannot open {path}: {e}") from None
        self.di = VmcoreinfoDebuginfo(vmcoreinfo)
        self.kallsyms_error = ""
        try:
            self.prog.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(self.prog), enable_index=0)
            self.kallsyms = True
        except READ_ERRORS as e:
            self.kallsyms, self.kallsyms_error = False, str(e)

    def read(self, address: int, size: int) -> bytes:
        return self.prog.read(address, size)

    def u64(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), "little")

    def address(self, name: str) -> int | None:
        """A symbol's runtime address: VMCOREINFO's, else kallsyms'."""
        a = self.di.symbol(name)
        if a is not None or not self.kallsyms:
            return a
        try:
            return self.prog.symbol(name).address
        except LookupError:
            return None

    def frame(self, index: int, pc: int) -> FrameRecord:
        """``pc`` named by kallsyms ("" where no symbol covers it: a module's)."""
        try:
            sym = self.prog.symbol(pc)
        except LookupError:
            return FrameRecord(index, pc, "")
        return FrameRecord(index, pc, sym.name, pc - sym.address, sym.size)

    def facts(self) -> KernelFacts:
        out = KernelFacts(self.kallsyms)
        if not self.kallsyms:
            out.warnings.append(f"kallsyms: not in this dump ({self.kallsyms_error}): no symbols, the "
                                "report is the kernel's log")
        out.log = self._fact(out, "log", self._log, [])
        out.uts = self._fact(out, "utsname", self._uts, {})
        if not self.kallsyms:
            return out
        out.cmdline = self._fact(out, "command line", self._cmdline, "")
        out.taint = self._fact(out, "taint", lambda: taint_letters(self.u64(self._need("tainted_mask"))), None)
        out.panic_cpu = self._fact(out, "panic CPU", self._panic_cpu, None)
        out.cpus = self._fact(out, "CPUs", self._cpus, 0)
        out.memory_kb = self._fact(out, "memory", self._memory_kb, 0)
        return out

    def _fact(self, out: KernelFacts, what: str, fn, default):
        try:
            return fn()
        except READ_ERRORS as e:
            out.warnings.append(f"{what}: {e}")
            return default

    def _need(self, name: str) -> int:
        a = self.address(name)
        if a is None:
            raise LookupError(f"no symbol {name}")
        return a

    def _log(self) -> list[PrintkRecord]:
        # Since 896fbe20b4e2 ("printk: use the lockless ringbuffer") (in v5.10)
        # VMCOREINFO names prb and its layout; older kernels' log_buf is not read here.
        if self.di.symbol("prb") is None:
            raise LookupError("VMCOREINFO has no SYMBOL(prb) (a kernel before v5.10)")
        return read_ring(self.read, self.u64(self._need("prb")), self.di)

    def _uts(self) -> dict[str, str]:
        name = self.di.member("struct uts_namespace", "name")
        if name is None:
            raise LookupError("VMCOREINFO has no OFFSET(uts_namespace.name)")
        return utsname(self.read(self._need("init_uts_ns") + name.offset, name.size))

    def _cmdline(self) -> str:
        raw = self.read(self.u64(self._need("saved_command_line")), 4096)
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    def _panic_cpu(self) -> int:
        return int.from_bytes(self.read(self._need("panic_cpu"), 4), "little", signed=True)

    def _cpus(self) -> int:
        # include/linux/cpumask.h: cpu_possible_mask is &__cpu_possible_mask, NR_CPUS bits.
        a = self._need("__cpu_possible_mask")
        size = self.prog.symbol(a).size or 8
        return int.from_bytes(self.read(a, min(size, 1024)), "little").bit_count()

    def _memory_kb(self) -> int:
        # mm/page_alloc.c _totalram_pages (atomic_long_t), pages of PAGESIZE.
        pages = self.u64(self._need("_totalram_pages"))
        return pages * int(self.di.vmcoreinfo.get("PAGESIZE", "4096")) // 1024
