"""kd-bt PID: the backtrace of any task, sleeping ones included.

A task that is not running was switched out in __switch_to_asm, which pushed
its callee-saved registers as a ``struct inactive_task_frame`` at
``task->thread.sp``. We load those registers into the selected vCPU for the
length of one walk with gdb's own unwinder (DWARF CFI, inline frames), and
put the vCPU's registers back afterwards, whatever happens.
"""

from __future__ import annotations

import re

import gdb
import gdb.unwinder

from kdebug.format import format_backtrace
from kdebug.model import FrameRecord

from .command import Command, register
from .cpus import cpu_thread, current_task_addr
from .debuginfo import lookup_type, offsetof, sizeof
from .memory import read, u64
from .tasks import find_task

FRAME = "struct inactive_task_frame"
KERNEL_START = 0xFFFF800000000000  # x86-64: kernel addresses are in the upper half
#: inactive_task_frame member -> register it restores (x86-64).
SAVED = (("r15", "r15"), ("r14", "r14"), ("r13", "r13"), ("r12", "r12"), ("bx", "rbx"), ("bp", "rbp"))


def walk(limit: int = 64, start=None) -> list[FrameRecord]:
    out = []
    f = start if start is not None else gdb.newest_frame()
    while f is not None and len(out) < limit:
        pc = f.pc()
        if pc < KERNEL_START:  # the user-space side of a syscall: not ours to unwind
            break
        name = f.name() or ""
        off = size = 0
        fn = f.function()
        if fn is not None:
            start = int(fn.value().address.cast(lookup_type("unsigned long")))
            off = pc - start
            block = f.block() if f.is_valid() else None
            while block is not None and block.function is None:
                block = block.superblock
            if block is not None and block.function is not None and block.function.name == fn.name:
                size = block.end - block.start
        else:
            # Assembly (entry code) has no DWARF function: ask the ELF symbols.
            name, off = _minsym(pc, name)
        sal = f.find_sal()
        out.append(FrameRecord(index=len(out), pc=pc, function=name, offset=off, size=size,
                               file=sal.symtab.filename if sal.symtab else "", line=sal.line or 0))
        try:
            f = f.older()
        except gdb.error:
            break
    return out


def _minsym(pc: int, default: str) -> tuple[str, int]:
    """(symbol, offset) from the ELF symbol table: "0x... <sym+off>"."""
    m = re.search(r"<([^+>]+)(?:\+(\d+))?>", gdb.format_address(pc))
    return (m.group(1), int(m.group(2) or 0)) if m else (default, 0)


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
        return walk(limit, start=f.older() if f is not None else None)
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
