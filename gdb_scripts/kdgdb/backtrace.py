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

from kdebug.format import format_backtrace
from kdebug.model import FrameRecord

from . import core

FRAME = "struct inactive_task_frame"
KERNEL_START = 0xFFFF800000000000  # x86-64: kernel addresses are in the upper half
#: inactive_task_frame member -> register it restores (x86-64).
SAVED = (("r15", "r15"), ("r14", "r14"), ("r13", "r13"), ("r12", "r12"), ("bx", "rbx"), ("bp", "rbp"))


def walk(limit: int = 64) -> list[FrameRecord]:
    out = []
    f = gdb.newest_frame()
    while f is not None and len(out) < limit:
        pc = f.pc()
        if pc < KERNEL_START:  # the user-space side of a syscall: not ours to unwind
            break
        name = f.name() or ""
        off = size = 0
        fn = f.function()
        if fn is not None:
            start = int(fn.value().address.cast(core.lookup_type("unsigned long")))
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


def _read_regs(names) -> dict[str, int]:
    f = gdb.newest_frame()
    return {n: int(f.read_register(n)) & (2**64 - 1) for n in names}


def _write_regs(values: dict[str, int]) -> None:
    for n, v in values.items():
        gdb.execute(f"set ${n} = {v:#x}", to_string=True)


def sleeping_backtrace(task_addr: int, limit: int = 64) -> list[FrameRecord]:
    """Frames of a switched-out task (``struct task_struct *`` at task_addr)."""
    sp = core.u64(task_addr + core.offsetof("struct task_struct", "thread.sp"))
    size = core.sizeof(FRAME)
    raw = core.read(sp, size)

    def member(name):
        off = core.offsetof(FRAME, name)
        return int.from_bytes(raw[off:off + 8], "little")

    new = {reg: member(m) for m, reg in SAVED}
    new["rip"] = member("ret_addr")
    new["rsp"] = sp + size
    saved = _read_regs(list(new))
    try:
        _write_regs(new)
        return walk(limit)
    finally:
        _write_regs(saved)
        gdb.invalidate_cached_frames()


def running_backtrace(cpu: int, limit: int = 64) -> list[FrameRecord]:
    want = core.cpu_thread(cpu)
    before = gdb.selected_thread()
    try:
        want.switch()
        return walk(limit)
    finally:
        before.switch()


def task_backtrace(pid: int, limit: int = 64) -> list[FrameRecord]:
    from .tasks import find_task

    t = find_task(pid)
    running = t.on_cpu and core.current_task_addr(t.cpu) == t.address
    return running_backtrace(t.cpu, limit) if running else sleeping_backtrace(t.address, limit)


@core.register
class KdBt(core.Command):
    """Backtrace of a task by pid, running or asleep: kd-bt PID [--limit N]"""

    name = "kd-bt"

    def arguments(self, p):
        p.add_argument("pid", type=int)
        p.add_argument("--limit", type=int, default=64)

    def run(self, a):
        return format_backtrace(task_backtrace(a.pid, a.limit))
