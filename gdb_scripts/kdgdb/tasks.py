"""kd-ps, kd-task: tasks read in bulk (one read_memory per task)."""

from __future__ import annotations

import gdb

from kdebug.decode.tasks import RawTask, TaskLayout, decode_task, filter_tasks, task_layout, to_records
from kdebug.decode.tasks import for_each_task as walk_tasks
from kdebug.format import format_tasks

from . import core

T = "struct task_struct"


def layout() -> TaskLayout:
    return core.cached("task_layout", lambda: task_layout(core.debuginfo))


def read_task(addr: int) -> RawTask:
    lay = layout()
    start, length = core.cached("task_span", lay.read_span)
    return decode_task(core.read(addr + start, length), addr, lay, start)


def for_each_task() -> list[RawTask]:
    """Every thread: group leaders on init_task.tasks, then their threads."""
    return walk_tasks(read_task, core.u64, core.symbol_address("init_task"), layout())


def collect_tasks():
    """TaskRecords of every task (``struct task_struct``), idle task first."""
    return core.per_stop("tasks", lambda: to_records(for_each_task(), core.read, layout()))


def find_task(pid: int):
    for t in collect_tasks():
        if t.pid == pid:
            return t
    raise gdb.GdbError(f"no task with pid {pid}")


@core.register
class KdPs(core.Command):
    """List tasks: pid, ppid, state, cpu, task address, comm.

    Usage: kd-ps [--state LETTERS] [--comm GLOB] [--pid PID]... [--user|--kernel] [--json]
    Kernel threads are shown in [brackets]. States are ps's letters (R S D T t X Z P I)."""

    name = "kd-ps"

    def arguments(self, p):
        p.add_argument("--state", "-s", help="keep these state letters, e.g. RD")
        p.add_argument("--comm", "-c", help="keep tasks whose name matches this glob")
        p.add_argument("--pid", "-p", type=int, action="append", help="keep this pid (or tgid)")
        g = p.add_mutually_exclusive_group()
        g.add_argument("--user", action="store_true", help="user tasks only")
        g.add_argument("--kernel", action="store_true", help="kernel threads only")
        p.add_argument("--json", action="store_true")

    def run(self, a):
        kth = True if a.kernel else False if a.user else None
        tasks = filter_tasks(collect_tasks(), states=a.state, comm=a.comm,
                             pids=set(a.pid) if a.pid else None, kthreads=kth)
        return format_tasks(tasks, "json" if a.json else "table")


@core.register
class KdTask(core.Command):
    """Details of one task: kd-task PID"""

    name = "kd-task"

    def arguments(self, p):
        p.add_argument("pid", type=int)

    def run(self, a):
        t = find_task(a.pid)
        v = gdb.Value(t.address).cast(core.lookup_type(T).pointer()).dereference()
        lines = [f"task       {t.address:#x} (struct task_struct *)",
                 f"pid        {t.pid}  tgid {t.tgid}  ppid {t.ppid}",
                 f"comm       {'[' + t.comm + ']' if t.is_kthread else t.comm}",
                 f"state      {t.state}{' (on cpu)' if t.on_cpu else ''}  cpu {t.cpu}",
                 f"flags      {int(v['flags']):#x}",
                 f"prio       {int(v['prio'])}  static {int(v['static_prio'])}  policy {int(v['policy'])}",
                 f"stack      {int(v['stack'].cast(core.lookup_type('unsigned long'))):#x}",
                 f"mm         {int(v['mm'].cast(core.lookup_type('unsigned long'))):#x}",
                 f"thread.sp  {int(v['thread']['sp']):#x}"]
        return "\n".join(lines)
