"""The kernel log as text: printk prefixes, stack frames, register lines (pure).

What every report parser (kdebug.report.taxonomy and its format families)
reads a log with: a line without its printk prefix, the frames of a printed
stack, the "RIP:" line of a register dump, the "CPU: ... PID: ..." line of
dump_stack(), and the record every report becomes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kdebug.model import FrameRecord
from kdebug.report.model import Splat

#: A console line's printk prefix: "[   12.345678] ", optionally with the
#: caller id of CONFIG_PRINTK_CALLER ("[  T95] "), or a syslog level "<3>".
_PREFIX = re.compile(r"^(?:<\d>)?(?:\[\s*\d+\.\d+\])?(?:\[\s*[TC]\d+\])? ?")
#: " func+0x1f/0x30 [module]" as %pS/%pB print it (lib/vsprintf.c), also
#: after "[<address>] " (print_ip_sym); "? " marks a frame the unwinder
#: only guessed (arch/x86/kernel/dumpstack.c printk_stack_address). A
#: module may carry its build-id after its name (CONFIG_STACKTRACE_BUILD_ID).
FRAME = re.compile(r"^\s*(?:\[<[0-9a-f]+>\]\s*)?(?P<q>\? )?(?P<func>[A-Za-z_.$][\w.$]*)"
                   r"\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)(?: \[(?P<mod>[\w-]+)(?: [0-9a-f]+)?\])?\s*$")
_BARE = re.compile(r"^\s*(?:\? )?0x[0-9a-f]+\s*$")
#: The stack markers show_trace_log_lvl prints between frames.
_MARKER = re.compile(r"^\s*</?(?:TASK|IRQ|NMI|SOFTIRQ|#DF|ENTRY_TRAMPOLINE|[A-Z_#]+)>\s*$")
#: "RIP: 0010:func+0x1f/0x30 [mod]" (__show_regs): the kernel-mode instruction.
RIP = re.compile(r"^RIP: 0010:(?P<func>[A-Za-z_.$][\w.$]*)\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)"
                 r"(?: \[(?P<mod>[\w-]+)(?: [0-9a-f]+)?\])?")
_CALL_TRACE = re.compile(r"^(?:Call Trace|stack backtrace):")
#: dump_stack_print_info (lib/dump_stack.c). "UID: %u" came with "lib/dump_stack:
#: report process UID in dump_stack_print_info()" (v6.11): 6.12 prints it, 6.1 not.
CONTEXT = re.compile(r"\bCPU: (?P<cpu>\d+) (?:UID: \d+ )?PID: (?P<pid>\d+) Comm: (?P<comm>\S+)")


def text(line: str) -> str:
    """A log line without its printk timestamp (console) and trailing CR."""
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1)


def plain(function: str) -> str:
    """Drop compiler suffixes (.cold, .isra.0, .constprop.0, .part.0): they vary by build."""
    return function.split(".", 1)[0]


def _frame(m: re.Match, index: int) -> FrameRecord:
    return FrameRecord(index=index, pc=0, function=m.group("func"), offset=int(m.group("off"), 16),
                       size=int(m.group("size"), 16), module=m.group("mod") or "")


def parse_stack(lines: Sequence[str], start: int, end: int) -> list[FrameRecord]:
    """The frames printed from ``lines[start]`` on, up to the first line that
    is neither a frame nor a stack marker (or ``end``); guessed ("? ") frames
    are left out, as the unwinder does not vouch for them."""
    frames: list[FrameRecord] = []
    for i in range(start, end):
        t = text(lines[i])
        if _MARKER.match(t):
            continue
        m = FRAME.match(t)
        if m is None:
            # A register dump inside the trace (an interrupt entry) goes on,
            # and so does an address no symbol covers ("? 0xffffffffc029e000":
            # a module's freed init text).
            if t.startswith(("RIP:", "Code:", "RSP:", "RAX:", "RDX:", "RBP:", "R10:", "R13:")) or _BARE.match(t):
                continue
            if frames or t.strip():
                break
            continue
        if not m.group("q"):
            frames.append(_frame(m, len(frames)))
    return frames


# -- spans: the lines from one report's header to the next ---------------------

def find(pattern: re.Pattern, lines: Sequence[str], start: int, end: int) -> tuple[int, re.Match] | None:
    """The first line of the span ``pattern`` matches (without its prefix), and the match."""
    for i in range(start, end):
        m = pattern.search(text(lines[i]))
        if m:
            return i, m
    return None


def call_trace(lines: Sequence[str], start: int, end: int) -> list[FrameRecord]:
    """The frames after the first "Call Trace:" in the span."""
    hit = find(_CALL_TRACE, lines, start, end)
    return parse_stack(lines, hit[0] + 1, end) if hit else []


def rips(lines: Sequence[str], start: int, end: int) -> list[tuple[int, re.Match]]:
    """Every kernel-mode "RIP:" line of the span."""
    return [(i, m) for i in range(start, end) if (m := RIP.match(text(lines[i])))]


def span_pid(lines: Sequence[str], start: int, end: int) -> int | None:
    """The pid of the span's first "CPU: ... PID: ..." line (dump_stack's)."""
    hit = find(CONTEXT, lines, start, end)
    return int(hit[1].group("pid")) if hit else None


def splat(kind: str, bug_type: str, headline: str, who: str, lines: Sequence[str], i: int, end: int,
          **kw) -> Splat:
    """The record of the report opened at ``lines[i]``. The title rule of
    every kind: its headline, then "in" the guilty function."""
    return Splat(kind=kind, bug_type=bug_type, headline=headline, title=f"{headline} in {who or 'unknown'}",
                 guilty=who, header=text(lines[i]).strip(), line=i,
                 pid=kw.pop("pid", None) or span_pid(lines, i, end), **kw)
