"""The memory-safety sanitizers' reports: KASAN, KFENCE, UBSAN (pure).

Each header below is matched anywhere in a line (the console may put other
output before it); the parser reads the report from its header to the next
one. kdebug.report.taxonomy puts them in its table.
"""

from __future__ import annotations

import re

from kdebug.model import FrameRecord
from kdebug.report.guilt import guilty
from kdebug.report.logtext import CONTEXT, call_trace, find, parse_stack, splat, text
from kdebug.report.model import Access, Splat

# KASAN, mm/kasan/report.c print_error_description: "BUG: KASAN: %s in %pS",
# then "%s of size %zu at addr %px by task %s/%d" (or "%s at addr ...", or
# "Free of addr %px by task %s/%d" for a bad free). The slab use-after-free
# type is "use-after-free" up to v6.2 and "slab-use-after-free" since
# 0e301731f558 ("kasan: infer allocation size by scanning metadata", v6.3);
# "double-free or invalid-free" became "double-free" / "invalid-free" with
# "kasan: better invalid/double-free report header" (v6.1). The stacks:
# "Allocated by task %u:", "Freed by task %u:" (CONFIG_KASAN_EXTRA_INFO, from
# "kasan: record and report more information" in v6.8, adds " on cpu %d at
# %lu.%06lus" before the colon).
KASAN = re.compile(r"BUG: KASAN: (?P<type>[a-z][a-z -]*?) in (?P<func>[A-Za-z_.$][\w.$]*)\+0x")
_KASAN_ACCESS = re.compile(r"^(?P<op>Read|Write)(?: of size (?P<size>\d+))? at addr (?P<addr>[0-9a-f]+) "
                           r"by task (?P<task>\S+)")
_KASAN_FREE = re.compile(r"^Free of addr (?P<addr>[0-9a-f]+) by task (?P<task>\S+)")
_KASAN_TRACK = re.compile(r"^(?P<what>Allocated|Freed) by task \d+(?: on cpu \d+ at [\d.]+s)?:")


def _task_pid(task: str) -> int | None:
    comm, _, pid = task.rpartition("/")
    return int(pid) if comm and pid.isdigit() else None


def kasan(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    bug_type = m.group("type")
    access = None
    for j in range(i + 1, min(i + 4, end)):
        t = text(lines[j])
        a = _KASAN_ACCESS.match(t)
        if a:
            access = Access(a.group("op"), int(a.group("size")) if a.group("size") else None,
                            int(a.group("addr"), 16), a.group("task"))
            break
        f = _KASAN_FREE.match(t)
        if f:
            access = Access("Free", None, int(f.group("addr"), 16), f.group("task"))
            break
    stacks = {"access": call_trace(lines, i, end)}
    for j in range(i + 1, end):
        tr = _KASAN_TRACK.match(text(lines[j]))
        if tr:
            stacks["alloc" if tr.group("what") == "Allocated" else "free"] = parse_stack(lines, j + 1, end)
    who = guilty([m.group("func"), *stacks["access"]])
    if access is not None and access.op in ("Read", "Write"):
        headline = f"KASAN: {bug_type} {access.op}"
    else:
        headline = f"KASAN: {bug_type}"
    pid = _task_pid(access.task) if access else None
    return splat("kasan", bug_type, headline, who, lines, i, end, access=access, stacks=stacks, pid=pid)


# KFENCE, mm/kfence/report.c kfence_report_error: "BUG: KFENCE: %s %s in %pS"
# (use-after-free/out-of-bounds read/write), "invalid free", "memory
# corruption", "invalid read/write"; then "Use-after-free read at 0x%p (in
# kfence-#%td):" and the stack; "kfence-#%td: ..., size=%d, cache=%s", then
# "allocated by task %d on cpu %d at %lu.%06lus:" and "freed by task ...";
# 6.12 adds the age before the colon, " (%lu.%06lus ago)", and later kernels
# say "rcu freeing" for an object on its way out through RCU.
KFENCE = re.compile(r"BUG: KFENCE: (?P<type>[a-z][a-z -]*?) in (?P<func>[A-Za-z_.$][\w.$]*)\+0x")
_KFENCE_TRACK = re.compile(r"^(?P<what>allocated|freed|rcu freeing) by task \d+ on cpu \d+ at [\d.]+s"
                           r"(?: \([\d.]+s ago\))?:")


def kfence(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    bug_type = m.group("type")
    stacks: dict[str, list[FrameRecord]] = {"access": []}
    # The line after the header ends with ':' ("Use-after-free read at 0x%p
    # (in kfence-#%td):", "Invalid free of 0x%p ...:"): the stack follows.
    for j in range(i + 1, min(i + 4, end)):
        if text(lines[j]).rstrip().endswith(":"):
            stacks["access"] = parse_stack(lines, j + 1, end)
            break
    for j in range(i + 1, end):
        tr = _KFENCE_TRACK.match(text(lines[j]))
        if tr:
            stacks["alloc" if tr.group("what") == "allocated" else "free"] = parse_stack(lines, j + 1, end)
    op = bug_type.rsplit(" ", 1)[-1]
    op = op if op in ("read", "write") else "Free" if bug_type == "invalid free" else ""
    ctx = find(CONTEXT, lines, i, end)  # the report names its task only in dump_stack's line
    task = f"{ctx[1].group('comm')}/{ctx[1].group('pid')}" if ctx else ""
    access = Access(op, task=task) if op else None
    who = guilty([m.group("func"), *stacks["access"]])
    return splat("kfence", bug_type, f"KFENCE: {bug_type}", who, lines, i, end, access=access, stacks=stacks)


# UBSAN, lib/ubsan.c ubsan_prologue: "UBSAN: %s in %s:%d:%d" (the check that
# fired and the source location), a line saying what, then dump_stack().
UBSAN = re.compile(r"UBSAN: (?P<type>[a-z][\w-]*) in (?P<where>\S+):\d+:\d+")


def ubsan(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    trace = call_trace(lines, i, end)
    detail = text(lines[i + 1]).strip() if i + 1 < end else ""
    return splat("ubsan", m.group("type"), f"UBSAN: {m.group('type')}", guilty(trace), lines, i, end,
                 detail=detail, stacks={"call": trace})
