"""kd-bt PID: the backtrace of any task, sleeping ones included.

A task that is not running was switched out in __switch_to_asm, which pushed
its callee-saved registers as a ``struct inactive_task_frame`` at
``task->thread.sp``. An unwinder makes those registers the caller of frame 0
for the length of one walk with gdb's own unwinder (DWARF CFI, inline frames).

Each frame is a FrameRecord filled as kdebug.analysis.stack fills drgn's
(kdebug.decode.frames): function, offset and size from the ELF symbol table
of the vmlinux or the module's debug file, module by address, inline from
gdb's frame type, and the walk ends where user space begins.
"""

from __future__ import annotations

import gdb
import gdb.unwinder

from kdebug.decode.elfsyms import ElfSymsError, read_vmlinux
from kdebug.decode.frames import SymbolTable, ends_walk, lookup_pc, read_symbol_table
from kdebug.decode.modules import RawModule, module_sections
from kdebug.format import format_backtrace
from kdebug.model import FrameRecord

from .cache import cached, per_stop
from .command import Command, register
from .cpus import cpu_thread, current_task_addr
from .debuginfo import lookup_type, offsetof, sizeof, symbol_address
from .memory import read, u64
from .modsyms import debug_file
from .modules import for_each_module, layout
from .tasks import find_task

FRAME = "struct inactive_task_frame"
#: inactive_task_frame member -> register it restores (x86-64).
SAVED = (("r15", "r15"), ("r14", "r14"), ("r13", "r13"), ("r12", "r12"), ("bx", "rbx"), ("bp", "rbp"))


def _vmlinux_symbols() -> SymbolTable | None:
    """The vmlinux's ELF symbols at their KASLR-moved addresses."""
    def build():
        sym = gdb.lookup_global_symbol("start_kernel")
        path = sym.symtab.objfile.filename if sym is not None and sym.symtab is not None else None
        if path is None:
            return None
        try:
            link = read_vmlinux(path, ["_text"])[1]["_text"]
            return read_symbol_table(path, bias=symbol_address("_text") - link)
        except (OSError, KeyError, ElfSymsError):
            return None
    return cached("frames-vmlinux", build)


def _module_at(pc: int) -> RawModule | None:
    """The loaded module whose memory holds ``pc`` (its text starts nearest below it)."""
    mods = per_stop("frames-modules", lambda: sorted(for_each_module(), key=lambda m: m.text_base))
    best = None
    for m in mods:
        if m.text_base <= pc < m.text_base + m.size:
            best = m
    return best


def _module_symbols(raw: RawModule) -> SymbolTable | None:
    """A module's ELF symbols (its debug file from `kd-symbols --dir`) where its sections are."""
    def build():
        path = debug_file(raw.name)
        if path is None:
            return None
        try:
            return read_symbol_table(path, section_addresses=module_sections(raw, layout(), read, u64))
        except (OSError, ElfSymsError):
            return None  # compressed or not ELF: frames keep DWARF's names
    return cached(("frames-module", raw.name, raw.text_base), build)


def _symbols_at(pc: int) -> tuple[str, SymbolTable | None]:
    """(module name, "" for vmlinux; its symbol table) of ``pc``."""
    if symbol_address("_text") <= pc < symbol_address("_end"):
        return "", _vmlinux_symbols()
    raw = _module_at(pc)
    return ("", None) if raw is None else (raw.name, _module_symbols(raw))


def walk(limit: int = 64, start=None, interrupted: bool = True) -> list[FrameRecord]:
    """Frames from ``start`` (default: the selected thread's newest frame) on.
    ``interrupted``: the first frame is where its CPU stopped, not a return address."""
    out: list[FrameRecord] = []
    f = start if start is not None else gdb.newest_frame()
    while f is not None and len(out) < limit:
        pc = f.pc()
        if ends_walk(len(out), pc):
            break
        inline = f.type() == gdb.INLINE_FRAME
        module, table = _symbols_at(pc)
        sym = None if inline or table is None else table.lookup(lookup_pc(pc, interrupted))
        if sym is not None:
            function, offset, size = sym.name, pc - sym.address, sym.size
        else:
            fn = f.function()
            function, offset, size = (fn.name if fn is not None else ""), 0, 0
        sal = f.find_sal()
        out.append(FrameRecord(index=len(out), pc=pc, function=function, offset=offset, size=size,
                               module=module, file=sal.symtab.filename if sal.symtab else "",
                               line=sal.line or 0, inline=inline))
        if not inline:
            interrupted = False  # the frames beyond are return addresses
        try:
            f = f.older()
        except gdb.error:
            break
    return out


class _SwitchedOut(gdb.unwinder.Unwinder):
    """Makes a switched-out task's registers the caller of frame 0, so gdb's
    own unwinder walks that task's stack from frame 1 on. Nothing is written
    to the target: this works on a core file too, and a live guest's CPU
    state stays untouched."""

    def __init__(self) -> None:
        super().__init__("kdebug-switched-out")
        self.registers: dict[str, int] | None = None
        self.claimed: tuple[int, int] | None = None  # (sp, pc) of the frame made the task's callee

    def __call__(self, pending_frame):
        if self.registers is None:
            return None
        sp, pc = pending_frame.read_register("rsp"), pending_frame.read_register("rip")
        # The innermost real frame (inline frames sit on top of it): the first asked.
        if self.claimed is None:
            self.claimed = (int(sp), int(pc))
        elif self.claimed != (int(sp), int(pc)):
            return None
        ulong = lookup_type("unsigned long")
        frame_id = _FrameId(sp, pc)
        info = pending_frame.create_unwind_info(frame_id)
        for reg, value in self.registers.items():
            info.add_saved_register(reg, gdb.Value(value).cast(ulong))
        return info


class _FrameId:
    def __init__(self, sp, pc) -> None:
        self.sp, self.pc = sp, pc


_UNWINDER = _SwitchedOut()
gdb.unwinder.register_unwinder(None, _UNWINDER, replace=True)


def sleeping_backtrace(task_addr: int, limit: int = 64) -> list[FrameRecord]:
    """Frames of a switched-out task (``struct task_struct *`` at task_addr)."""
    sp = u64(task_addr + offsetof("struct task_struct", "thread.sp"))
    size = sizeof(FRAME)
    raw = read(sp, size)

    def member(name):
        off = offsetof(FRAME, name)
        return int.from_bytes(raw[off:off + 8], "little")

    regs = {reg: member(m) for m, reg in SAVED}
    regs["rip"] = member("ret_addr")
    regs["rsp"] = sp + size
    _UNWINDER.registers, _UNWINDER.claimed = regs, None
    gdb.invalidate_cached_frames()
    try:
        f = gdb.newest_frame()
        while f is not None and f.type() == gdb.INLINE_FRAME:
            f = f.older()
        return walk(limit, start=f.older() if f is not None else None, interrupted=False)
    finally:
        _UNWINDER.registers = _UNWINDER.claimed = None
        gdb.invalidate_cached_frames()


def running_backtrace(cpu: int, limit: int = 64) -> list[FrameRecord]:
    want = cpu_thread(cpu)
    before = gdb.selected_thread()
    try:
        want.switch()
        return walk(limit)
    finally:
        before.switch()


def task_backtrace(pid: int, limit: int = 64) -> list[FrameRecord]:
    t = find_task(pid)
    running = t.on_cpu and current_task_addr(t.cpu) == t.address
    return running_backtrace(t.cpu, limit) if running else sleeping_backtrace(t.address, limit)


@register
class KdBt(Command):
    """Backtrace of a task by pid, running or asleep: kd-bt PID [--limit N] [--json]"""

    name = "kd-bt"

    def arguments(self, p):
        p.add_argument("pid", type=int)
        p.add_argument("--limit", type=int, default=64)
        p.add_argument("--json", action="store_true")

    def records(self, a):
        return task_backtrace(a.pid, a.limit)

    def render(self, frames, a):
        return format_backtrace(frames, "json" if a.json else "text")
