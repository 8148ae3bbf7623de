"""Breakpoint presets (pure): which kernel functions each one stops in."""

from __future__ import annotations

from dataclasses import dataclass

from kdebug.errors import UsageError


@dataclass(frozen=True)
class BreakSpec:
    location: str  # a function name
    hardware: bool = False  # survives the decompressor rewriting the text
    condition: str = ""
    alternatives: tuple[str, ...] = ()  # older names, tried when location is absent


PRESETS = {
    "boot": "start_kernel, rest_init, kernel_init, run_init_process",
    "panic": "panic, die (oops), __warn (WARN)",
    "module": "do_init_module: a module's init is about to run",
    "syscall": "syscall NAME: entry of sys_NAME",
    "sched": "sched PID: the task with this pid is switched in",
}


def preset(words: list[str]) -> list[BreakSpec]:
    """Breakpoints of ``kd-break PRESET [ARG]``."""
    if not words:
        raise UsageError("kd-break needs a preset: " + ", ".join(PRESETS))
    name, args = words[0], words[1:]
    if name == "boot":
        # Hardware: `kdebug attach --freeze` stops before the decompressor has
        # copied the kernel into place, which would erase software breakpoints.
        return [BreakSpec(f, hardware=True) for f in ("start_kernel", "rest_init", "kernel_init", "run_init_process")]
    if name == "panic":
        return [BreakSpec("panic"), BreakSpec("die"), BreakSpec("__warn")]
    if name == "module":
        return [BreakSpec("do_init_module")]
    if name == "syscall":
        if len(args) != 1 or not args[0].isidentifier():
            raise UsageError("usage: kd-break syscall NAME (e.g. openat)")
        sc = args[0].removeprefix("sys_")
        # x86-64 syscall wrappers are __x64_sys_* since v4.17 (pt_regs-based
        # calling). uname, stat, lstat, fstat are the "new" variants on x86-64
        # (sys_newuname...); the plain names are the old i386 ABI.
        return [BreakSpec(f"__x64_sys_new{sc}",
                          alternatives=(f"__x64_sys_{sc}", f"__do_sys_{sc}", f"sys_{sc}"))]
    if name == "sched":
        if len(args) != 1 or not args[0].isdigit():
            raise UsageError("usage: kd-break sched PID")
        return [BreakSpec("__switch_to", condition=f"next_p->pid == {int(args[0])}")]
    raise UsageError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
