"""The x86 trap handlers' and BUG()/WARN()'s reports: the page-fault oops,
die() ("general protection fault", "invalid opcode", ...), the stack guard
page, the double fault, "kernel BUG at", "WARNING: CPU:" (pure).

Each header below is matched anywhere in a line; the parser reads the report
from its header to the next one. kdebug.report.taxonomy puts them in its table.
"""

from __future__ import annotations

import re

from kdebug.report.guilt import guilty, rip_then_trace
from kdebug.report.logtext import call_trace, splat
from kdebug.report.model import Splat

# arch/x86/kernel/traps.c handle_stack_overflow: "BUG: %s stack guard page was
# hit at %p (stack is %p..%p)", then die("stack guard page"); exc_double_fault:
# "PANIC: double fault, error_code: 0x%lx" (pr_fmt "traps: " in 6.12), then
# die("double fault").
STACK_GUARD = re.compile(r"BUG: (?P<stack>\w+) stack guard page was hit at")
DOUBLE_FAULT = re.compile(r"PANIC: double fault, error_code: 0x[0-9a-f]+")


def stack_guard(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = rip_then_trace(lines, i, end)
    return splat("stack-overflow", f"{m.group('stack')} stack guard page was hit", "BUG: stack guard page was hit",
                 who, lines, i, end, stacks={"call": trace})


def double_fault(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = rip_then_trace(lines, i, end)
    return splat("double-fault", "double fault", "PANIC: double fault", who, lines, i, end,
                 stacks={"call": trace})


# arch/x86/kernel/dumpstack.c __die_header: "%s: %04lx [#%d]..." where %s is
# die()'s string ("general protection fault, probably for non-canonical
# address 0x...", "divide error", "invalid opcode", "stack guard page",
# "double fault", "Oops" for a page fault); f9f62a877da1
# ("x86/dumpstack: Use uniform "Oops: " prefix for die() messages", v6.10)
# puts "Oops: " before it.
DIE = re.compile(r"(?:Oops: )?(?P<what>[A-Za-z][^:\[\n]*?): [0-9a-f]{4} \[#\d+\]")
_DIE_KINDS = (("general protection fault", "gpf", "general protection fault"),
              ("divide error", "divide-error", "divide error"),
              ("invalid opcode", "invalid-opcode", "invalid opcode"),
              ("stack guard page", "stack-overflow", "BUG: stack guard page was hit"),
              ("double fault", "double-fault", "PANIC: double fault"))


def _die_kind(m: re.Match) -> tuple[str, str, str]:
    """(kind, bug type, headline) of a die() header."""
    what = m.group("what")
    for prefix, kind, headline in _DIE_KINDS:
        if what.startswith(prefix):
            return kind, prefix, headline  # the prefix: GPF's text carries an address
    return "oops", what, f"Oops: {what}"


def die_kind(m: re.Match) -> str:
    """The kind a die() header names: "gpf", "divide-error", ..., else "oops"."""
    return _die_kind(m)[0]


def die(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    kind, bug_type, headline = _die_kind(m)
    who, trace = rip_then_trace(lines, i, end)
    return splat(kind, bug_type, headline, who, lines, i, end, stacks={"call": trace})


# arch/x86/mm/fault.c page_fault_oops: "BUG: kernel NULL pointer dereference,
# address: %px" or "BUG: unable to handle page fault for address: %px", then
# die("Oops").
NULL = re.compile(r"BUG: kernel NULL pointer dereference, address:")
PAGE_FAULT = re.compile(r"BUG: unable to handle page fault for address:")


def null(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = rip_then_trace(lines, i, end)
    return splat("null-deref", "kernel NULL pointer dereference", "BUG: kernel NULL pointer dereference", who,
                 lines, i, end, stacks={"call": trace})


def page_fault(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = rip_then_trace(lines, i, end)
    return splat("page-fault", "unable to handle page fault", "BUG: unable to handle page fault", who, lines, i, end,
                 stacks={"call": trace})


# lib/bug.c report_bug: BUG() prints "kernel BUG at %s:%u!" (then die("invalid
# opcode")); WARN() goes to kernel/panic.c __warn: "WARNING: CPU: %d PID: %d
# at %s:%d %pS" (or "at %pS" without the file).
BUG = re.compile(r"kernel BUG at (?P<where>\S+?):\d+!")
WARN = re.compile(r"WARNING: CPU: \d+ PID: (?P<pid>\d+) at (?:\S+:\d+ )?(?P<func>[A-Za-z_.$][\w.$]*)\+0x")


def bug(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = rip_then_trace(lines, i, end)
    return splat("bug", "kernel BUG", "kernel BUG", who, lines, i, end, detail=m.group("where"),
                 stacks={"call": trace})


def warn(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    trace = call_trace(lines, i, end)
    who = guilty([m.group("func")]) or rip_then_trace(lines, i, end)[0]
    return splat("warn", "WARNING", "WARNING", who, lines, i, end, pid=int(m.group("pid")),
                 stacks={"call": trace})
