"""Tasks: every ``struct task_struct`` as a TaskRecord, and the summary a
report shows (count by state, D-state tasks with stacks, top memory users)."""

from __future__ import annotations

from collections import Counter

import drgn
from drgn.helpers.linux.mm import task_rss
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.sched import task_state_to_char

from kdebug.analysis.program import cached
from kdebug.analysis.stack import task_backtrace
from kdebug.model import TaskRecord
from kdebug.report.model import BlockedTask, TaskSummary

#: include/linux/sched.h: a kernel thread (a macro, so not in the debug info).
PF_KTHREAD = 0x00200000


def task_cpu(task: drgn.Object) -> int:
    # Since Linux kernel commit bcf9033e5449 ("sched: move CPU field back into
    # thread_info if THREAD_INFO_IN_TASK") (in v5.16) the CPU is in thread_info.
    try:
        return task.thread_info.cpu.value_()
    except AttributeError:
        return task.cpu.value_()


def task_record(prog: drgn.Program, task: drgn.Object) -> TaskRecord:
    """``struct task_struct *`` -> TaskRecord."""
    kthread = bool(task.flags.value_() & PF_KTHREAD)
    rss_kb = None
    if not kthread and task.mm:
        try:
            rss = task_rss(prog, task)
            rss_kb = rss.total * prog["PAGE_SIZE"].value_() // 1024
        except (LookupError, drgn.FaultError, AttributeError):
            rss_kb = None
    try:
        ppid = task.real_parent.pid.value_()
    except drgn.FaultError:
        ppid = -1
    return TaskRecord(pid=task.pid.value_(), tgid=task.tgid.value_(), ppid=ppid,
                      state=task_state_to_char(task), cpu=task_cpu(task),
                      comm=task.comm.string_().decode(errors="replace"), address=task.value_(),
                      rss_kb=rss_kb, is_kthread=kthread, on_cpu=bool(task.on_cpu.value_()))


def collect_tasks(prog: drgn.Program) -> list[TaskRecord]:
    """Every task (threads included), by pid; drgn's walk does not use the PID hash."""
    def compute():
        return sorted((task_record(prog, t) for t in for_each_task(prog)), key=lambda r: (r.pid, r.address))

    return cached(prog, "kdebug.tasks", compute)


def summarize_tasks(prog: drgn.Program, tasks: list[TaskRecord], top: int = 5,
                    max_blocked: int = 20) -> TaskSummary:
    by_state = dict(sorted(Counter(t.state for t in tasks).items()))
    blocked = [BlockedTask(t, task_backtrace(prog, drgn.Object(prog, "struct task_struct *", t.address)))
               for t in tasks if t.state == "D"][:max_blocked]
    users = sorted((t for t in tasks if t.rss_kb and t.pid == t.tgid), key=lambda t: -t.rss_kb)
    return TaskSummary(total=len(tasks), by_state=by_state, blocked=blocked, top_memory=users[:top])
