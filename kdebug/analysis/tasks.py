"""Tasks: every ``struct task_struct`` as a TaskRecord, and the summary a
report shows (count by state, D-state tasks with stacks, top memory users)."""

from __future__ import annotations

import dataclasses
from collections import Counter

import drgn
from drgn.helpers.linux.mm import task_rss
from drgn.helpers.linux.pid import for_each_task

from kdebug.analysis.debuginfo import layout
from kdebug.analysis.gaps import gap
from kdebug.analysis.program import cached
from kdebug.analysis.stack import task_backtrace
from kdebug.decode import tasks as decode
from kdebug.model import TaskRecord
from kdebug.report.model import BlockedTask, DumpGap, TaskSummary


def task_record(prog: drgn.Program, task: drgn.Object) -> TaskRecord:
    """``struct task_struct *`` -> TaskRecord, with the meaning kd-ps gives
    it (kdebug.decode.tasks): one read of the task, one of its parent."""
    lay = layout(prog, "task", decode.task_layout)
    start, length = lay.read_span()
    addr = task.value_()
    raw = decode.decode_task(prog.read(addr + start, length), addr, lay, start)
    try:
        ppid = decode.parent_tgid(prog.read, raw, lay)
    except drgn.FaultError:
        ppid = -1
    rec = decode.task_record(raw, ppid)
    rss_kb = None
    if not rec.is_kthread and task.mm:
        try:
            rss = task_rss(prog, task)
            rss_kb = rss.total * prog["PAGE_SIZE"].value_() // 1024
        except (LookupError, drgn.FaultError, AttributeError):
            rss_kb = None
    return dataclasses.replace(rec, rss_kb=rss_kb)


def walk_tasks(prog: drgn.Program) -> tuple[list[TaskRecord], DumpGap | None]:
    """Every task (threads included), by pid, and the gap that cut the walk
    short (None when it reached the end). drgn's ``for_each_task`` walks the
    initial PID namespace's IDR (``init_pid_ns.idr``; the PID hash before
    v4.15) and takes each ``struct pid``'s PIDTYPE_PID task: the idle tasks
    (pid 0) have no ``struct pid`` there and are not in it. The one task walk
    of the drgn engine: the report, the capture's dump check and the shell
    all take their tasks from it (cached on the program)."""
    def compute():
        out: list[TaskRecord] = []
        cut = None
        try:
            for t in for_each_task(prog):
                out.append(task_record(prog, t))
        except drgn.FaultError as e:
            cut = gap(prog, "tasks", e)
        return sorted(out, key=lambda r: (r.pid, r.address)), cut

    return cached(prog, "kdebug.task-walk", compute)


def collect_tasks(prog: drgn.Program) -> list[TaskRecord]:
    """:func:`walk_tasks`' records, for callers that take a list as whole: a
    walk a missing page cut short raises ``drgn.FaultError`` instead."""
    tasks, cut = walk_tasks(prog)
    if cut is not None:
        raise drgn.FaultError(cut.error, cut.address if cut.address is not None else 0)
    return tasks


def summarize_tasks(prog: drgn.Program, tasks: list[TaskRecord], top: int = 5,
                    max_blocked: int = 20) -> TaskSummary:
    by_state = dict(sorted(Counter(t.state for t in tasks).items()))
    blocked = [BlockedTask(t, task_backtrace(prog, drgn.Object(prog, "struct task_struct *", t.address)))
               for t in tasks if t.state == "D"][:max_blocked]
    users = sorted((t for t in tasks if t.rss_kb and t.pid == t.tgid), key=lambda t: -t.rss_kb)
    return TaskSummary(total=len(tasks), by_state=by_state, blocked=blocked, top_memory=users[:top])
