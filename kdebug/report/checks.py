"""The kernel's checkers of locking and data-structure use: lockdep,
refcount_t, list debugging, the scheduler's atomic-context checks (pure).

Each header below is matched anywhere in a line; the parser reads the report
from its header to the next one. kdebug.report.taxonomy puts them in its table.
"""

from __future__ import annotations

import re

from kdebug.report.guilt import guilty, rip_then_trace
from kdebug.report.logtext import FRAME, call_trace, find, splat, text
from kdebug.report.model import Splat

# lockdep, kernel/locking/lockdep.c: "WARNING: possible circular locking
# dependency detected" (print_circular_bug_header), "WARNING: possible
# recursive locking detected" (print_deadlock_bug), "WARNING: inconsistent
# lock state" (print_usage_bug), each naming the lock the task "is trying to
# acquire" / "takes" with print_lock()'s "..., at: %pS"; "WARNING: bad unlock
# balance detected!" (print_unlock_imbalance_bug) with print_ip_sym()'s
# "[<%px>] %pS" after "is trying to release lock (...) at:". The rest of its
# reports, titled by their own words: "WARNING: possible irq lock inversion
# dependency detected" (print_irq_inversion_bug), "WARNING: %s-safe -> %s-unsafe
# lock order detected" (print_bad_irq_dependency), "WARNING: bad contention
# detected!" (print_lock_contention_bug), "WARNING: held lock freed!"
# (print_freed_lock_bug), "WARNING: lock held when returning to user space!"
# (lockdep_sys_exit), "WARNING:
# Nested lock was not taken" (print_lock_nested_lock_not_held), and
# lockdep_rcu_suspicious's "WARNING: suspicious RCU usage". None of them
# panics (they print and go on, lockdep turned off after the first).
LOCKDEP = re.compile(r"WARNING: (?P<type>possible circular locking dependency|possible recursive locking|"
                     r"possible irq lock inversion dependency|\w+-safe -> \w+-unsafe lock order|"
                     r"inconsistent lock state|bad unlock balance|bad contention|held lock freed|"
                     r"lock held when returning to user space|Nested lock was not taken|suspicious RCU usage)"
                     r"(?: detected)?!?")
_AT = re.compile(r", at: (?P<func>[A-Za-z_.$][\w.$]*)\+0x")
_LOCKDEP_TITLES = {"possible circular locking dependency": "possible deadlock",
                   "possible recursive locking": "possible deadlock",
                   "possible irq lock inversion dependency": "possible deadlock",
                   "inconsistent lock state": "inconsistent lock state",
                   "suspicious RCU usage": "suspicious RCU usage"}


_ACQUIRE = re.compile(r"is trying to acquire lock:|\] takes:|is trying to acquire:")
_RELEASE = re.compile(r"is trying to release lock")
_COMM_PID = re.compile(r"^(\S+)/(\d+)\b")


def lockdep(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    bug_type = m.group("type")
    trace = call_trace(lines, i, end)
    named: list[str] = []
    cue = find(_RELEASE if bug_type == "bad unlock balance" else _ACQUIRE, lines, i, end)
    if cue is not None:
        if bug_type == "bad unlock balance":
            f = FRAME.match(text(lines[cue[0] + 1])) if cue[0] + 1 < end else None
            named = [f.group("func")] if f else []
        else:
            at = find(_AT, lines, cue[0], min(cue[0] + 4, end))
            named = [at[1].group("func")] if at else []
    who_pid = _COMM_PID.match(text(lines[cue[0]])) if cue else None
    headline = _LOCKDEP_TITLES.get(bug_type) or ("possible deadlock" if "lock order" in bug_type
                                                 else f"WARNING: {bug_type}")
    return splat("lockdep", bug_type, headline, guilty([*named, *trace]), lines, i, end,
                 pid=int(who_pid.group(2)) if who_pid else None, stacks={"call": trace})


# refcount_t, lib/refcount.c refcount_warn_saturate: WARN_ONCE(1,
# "refcount_t: %s.\n") prints the message, then "WARNING: CPU: ... at
# lib/refcount.c:...", the registers and the call trace.
REFCOUNT = re.compile(r"refcount_t: (?P<type>[^.\n]+)\.")


def refcount(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = rip_then_trace(lines, i, end)
    return splat("refcount", m.group("type"), "WARNING: refcount bug", who, lines, i, end, detail=text(lines[i]),
                 stacks={"call": trace})


# list debugging, lib/list_debug.c: "list_add corruption. ..." / "list_del
# corruption, %px->next is NULL" and the like through CHECK_DATA_CORRUPTION:
# then BUG() ("kernel BUG at lib/list_debug.c:%d!") with
# CONFIG_BUG_ON_DATA_CORRUPTION, else a WARNING there.
LIST = re.compile(r"(?P<type>list_(?:add|del) corruption)[.,] ")


def list_corruption(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = rip_then_trace(lines, i, end)
    return splat("list", m.group("type"), "BUG: corrupted list", who, lines, i, end, detail=text(lines[i]),
                 stacks={"call": trace})


# kernel/sched/core.c: __might_resched's "BUG: sleeping function called from
# invalid context at %s:%d" (CONFIG_DEBUG_ATOMIC_SLEEP), and __schedule_bug's
# "BUG: scheduling while atomic: %s/%d/0x%08x", which panics with
# panic_on_warn before its own dump_stack(): the panic's stack is its trace.
MIGHT_SLEEP = re.compile(r"BUG: sleeping function called from invalid context at (?P<where>\S+)")
SCHED_ATOMIC = re.compile(r"BUG: scheduling while atomic: (?P<task>\S+?)/(?P<pid>\d+)/0x")


def might_sleep(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    trace = call_trace(lines, i, end)
    pid = None
    if i + 1 < end and (p := re.search(r"\bpid: (\d+), name:", text(lines[i + 1]))):
        pid = int(p.group(1))
    return splat("atomic-sleep", "sleeping function called from invalid context",
                 "BUG: sleeping function called from invalid context", guilty(trace), lines, i, end,
                 pid=pid, detail=m.group("where"), stacks={"call": trace})


def sched_atomic(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    trace = call_trace(lines, i, end)
    return splat("sched-atomic", "scheduling while atomic", "BUG: scheduling while atomic", guilty(trace),
                 lines, i, end, pid=int(m.group("pid")), stacks={"call": trace})
