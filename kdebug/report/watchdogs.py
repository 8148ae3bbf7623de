"""The watchdogs' reports: the RCU stall detector, the soft and hard lockup
detectors, the hung-task detector (pure).

Each header below is matched anywhere in a line; the parser reads the report
from its header to the next one. kdebug.report.taxonomy puts them in its table.
"""

from __future__ import annotations

import re

from kdebug.report.guilt import STALL_CONTEXT, guilty, rip_then_trace
from kdebug.report.logtext import RIP, call_trace, rips, splat, text
from kdebug.report.model import Splat

# RCU, kernel/rcu/tree_stall.h (pr_fmt "rcu: "): "INFO: %s self-detected
# stall on CPU" and "INFO: %s detected stalls on CPUs/tasks:" (and the
# expedited form). The stalled code is the task context the timer interrupt
# or the backtrace NMI interrupted: the RIP that follows "<TASK>".
RCU = re.compile(r"INFO: (?P<flavor>rcu_\w+) (?P<type>self-detected stall on CPU|detected stalls on CPUs/tasks|"
                 r"detected expedited stalls on CPUs/tasks)")


def rcu(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    task_rip = ""
    after_task = False
    for j in range(i, end):
        t = text(lines[j])
        if re.match(r"^\s*<TASK>", t):
            after_task = True
            continue
        r = RIP.match(t)
        if r and after_task:
            task_rip = r.group("func")
            break
    found = [r.group("func") for _, r in rips(lines, i, end)]
    trace = call_trace(lines, i, end)
    who = guilty([task_rip] if task_rip else [], STALL_CONTEXT) or guilty([*found, *trace], STALL_CONTEXT)
    return splat("rcu-stall", m.group("type"), "INFO: rcu detected stall", who, lines, i, end,
                 stacks={"call": trace})


# kernel/watchdog.c (pr_fmt "watchdog: "): "BUG: soft lockup - CPU#%d stuck
# for %us! [%s:%d]"; kernel/watchdog_hld.c: "Watchdog detected hard LOCKUP on
# cpu %d"; kernel/hung_task.c: "INFO: task %s:%d blocked for more than %ld
# seconds."
SOFT = re.compile(r"BUG: soft lockup - CPU#\d+ stuck for \d+s! \[(?P<task>.+):(?P<pid>\d+)\]")
HARD = re.compile(r"Watchdog detected hard LOCKUP on cpu \d+")
HUNG = re.compile(r"INFO: task (?P<task>.+):(?P<pid>\d+) blocked for more than \d+ seconds")


def soft(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = rip_then_trace(lines, i, end)
    return splat("soft-lockup", "soft lockup", "BUG: soft lockup", who, lines, i, end, pid=int(m.group("pid")),
                 stacks={"call": trace})


def hard(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = rip_then_trace(lines, i, end)
    return splat("hard-lockup", "hard LOCKUP", "watchdog: hard LOCKUP", who, lines, i, end, stacks={"call": trace})


def hung(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    # khungtaskd prints it about another task: no pid ties it to the panic
    # (which khungtaskd calls), and the span's "CPU: ... PID:" line is that
    # panic's, so pid stays None.
    trace = call_trace(lines, i, end)
    return Splat(kind="hung-task", bug_type="task blocked", headline="INFO: task hung",
                 title=f"INFO: task hung in {guilty(trace) or 'unknown'}", guilty=guilty(trace),
                 header=text(lines[i]).strip(), line=i, pid=None, detail=f"{m.group('task')}:{m.group('pid')}",
                 stacks={"call": trace})
