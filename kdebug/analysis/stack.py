"""Stack traces as FrameRecords: function+offset/size (as the kernel prints
them), the module, and file:line from DWARF. The fields mean what
kdebug.model.FrameRecord says, as kd-bt fills them in gdb
(kdebug.decode.frames): drgn's StackFrame.symbol() is the ELF symbol lookup
that kdebug.decode.frames.SymbolTable does for gdb."""

from __future__ import annotations

import dataclasses

import drgn

from kdebug.decode.frames import ends_walk
from kdebug.model import FrameRecord


def _module_name(prog: drgn.Program, pc: int) -> str:
    try:
        mod = prog.module(pc)
    except LookupError:
        return ""
    return "" if isinstance(mod, drgn.MainModule) else mod.name


def frame_records(prog: drgn.Program, trace: drgn.StackTrace) -> list[FrameRecord]:
    out = []
    for i, f in enumerate(trace):
        if ends_walk(i, f.pc):
            break  # the user side of a syscall or interrupt
        name = f.function_name or ""  # None where drgn knows no function (user space)
        try:
            sym = f.symbol()
        except LookupError:
            sym = None
        if f.is_inline or sym is None:
            function, offset, size = name, 0, 0
        else:
            function, offset, size = sym.name, f.pc - sym.address, sym.size
        try:
            file, line, _col = f.source()
        except LookupError:
            file, line = "", 0
        out.append(FrameRecord(index=i, pc=f.pc, function=function, offset=offset, size=size,
                               module=_module_name(prog, f.pc), file=file, line=line,
                               inline=f.is_inline))
    return out


def task_backtrace(prog: drgn.Program, task: drgn.Object) -> list[FrameRecord]:
    """``struct task_struct *`` -> its frames ([] when drgn cannot unwind it)."""
    try:
        return frame_records(prog, prog.stack_trace(task))
    except (ValueError, LookupError, drgn.FaultError):
        return []


def resolve_frames(prog: drgn.Program, frames: list[FrameRecord]) -> list[FrameRecord]:
    """Frames read from the log's text ("func+0x1f/0x30 [mod]") with the pc,
    file and line the dump's debug info gives them. A static function's name
    can belong to several symbols: the one of the printed size wins. Printed
    frames are return addresses, so the line is the call's (pc - 1); a frame
    drgn knows nothing about stays as printed."""
    out = []
    for f in frames:
        try:
            syms = prog.symbols(f.function)
        except (LookupError, ValueError):
            syms = []
        sym = next((s for s in syms if f.size and s.size == f.size), syms[0] if syms else None)
        if sym is None:
            out.append(f)
            continue
        pc = sym.address + f.offset
        file, line = f.file, f.line
        try:
            loc = prog.source_location(pc - 1 if f.offset else pc)
            if len(loc):
                file, line = loc[0].filename or "", loc[0].line
        except LookupError:
            pass
        out.append(dataclasses.replace(f, pc=pc, file=file, line=line,
                                       module=f.module or _module_name(prog, pc)))
    return out
