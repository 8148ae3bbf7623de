"""kd-ps, kd-task: tasks read in bulk (one read_memory per task)."""

from __future__ import annotations

import gdb

from kdebug.decode.tasks import RawTask, TaskLayout, decode_task, filter_tasks, task_layout, to_records
from kdebug.decode.tasks import for_each_task as walk_tasks
from kdebug.format import format_tasks

from .cache import cached, per_stop
from .command import Command, register
from .debuginfo import gdb_debuginfo, lookup_type, symbol_address, ulong
from .memory import read, u64

T = "struct task_struct"


def layout() -> TaskLayout:
    return cached("task_layout", lambda: task_layout(gdb_debuginfo))


def read_task(addr: int) -> RawTask:
    lay = layout()
    start, length = cached("task_span", lay.read_span)
    return decode_task(read(addr + start, length), addr, lay, start)


def for_each_task() -> list[RawTask]:
    """Every thread: group leaders on init_task.tasks, then their threads."""
    return walk_tasks(read_task, u64, symbol_address("init_task"), layout())


def collect_tasks():
    """TaskRecords of every task (``struct task_struct``), idle task first."""
    return per_stop("tasks", lambda: to_records(for_each_task(), read, layout()))


def find_task(pid: int):
    for t in collect_tasks():
        if t.pid == pid:
            return t
    raise gdb.GdbError(f"no task with pid {pid}")


@register
class KdPs(Command):
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

    def records(self, a):
        kth = True if a.kernel else False if a.user else None
        return filter_tasks(collect_tasks(), states=a.state, comm=a.comm,
                            pids=set(a.pid) if a.pid else None, kthreads=kth)

    def render(self, tasks, a):
        return format_tasks(tasks, "json" if a.json else "table")


@register
class KdTask(Command):
    """Details of one task: kd-task PID"""

    name = "kd-task"

    def arguments(self, p):
        p.add_argument("pid", type=int)

    def records(self, a):
        """The TaskRecord and what else kd-task shows: flags, priorities, stack, mm, thread.sp."""
        t = find_task(a.pid)
        v = gdb.Value(t.address).cast(lookup_type(T).pointer()).dereference()
        return {"task": t, "flags": int(v["flags"]), "prio": int(v["prio"]), "static_prio": int(v["static_prio"]),
                "policy": int(v["policy"]), "stack": ulong(v["stack"]), "mm": ulong(v["mm"]),
                "thread_sp": int(v["thread"]["sp"])}

    def render(self, d, a):
        t = d["task"]
        lines = [f"task       {t.address:#x} (struct task_struct *)",
                 f"pid        {t.pid}  tgid {t.tgid}  ppid {t.ppid}",
                 f"comm       {'[' + t.comm + ']' if t.is_kthread else t.comm}",
                 f"state      {t.state}{' (on cpu)' if t.on_cpu else ''}  cpu {t.cpu}",
                 f"flags      {d['flags']:#x}",
                 f"prio       {d['prio']}  static {d['static_prio']}  policy {d['policy']}",
                 f"stack      {d['stack']:#x}",
                 f"mm         {d['mm']:#x}",
                 f"thread.sp  {d['thread_sp']:#x}"]
        return "\n".join(lines)
