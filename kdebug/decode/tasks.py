"""``struct task_struct`` from raw bytes: what a task is, as /proc shows it.

The one place where a task's fields get their meaning (state letter, ppid,
kernel thread), for every engine: kd-ps in gdb and the drgn collectors both
build their layout with :func:`task_layout` and their records with
:func:`task_record`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kdebug.decode.structs import Debuginfo, Field, pointer_at, require, span
from kdebug.model import TASK_STATE_LETTERS, TaskRecord

# include/linux/sched.h #defines, absent from the debuginfo. These values and
# the letters of fs/proc/array.c task_state_array (ABI: /proc/PID/stat) hold
# since Linux commit 06eb61844d84 ("sched/debug: Add explicit TASK_IDLE
# printing") (v4.14).
TASK_REPORT = 0x7F  # INTERRUPTIBLE|UNINTERRUPTIBLE|STOPPED|TRACED|EXIT_DEAD|EXIT_ZOMBIE|PARKED
TASK_UNINTERRUPTIBLE = 0x2
TASK_IDLE = 0x402  # TASK_UNINTERRUPTIBLE | TASK_NOLOAD
TASK_REPORT_IDLE = TASK_REPORT + 1
# TASK_RTLOCK_WAIT (v5.15, "sched/wakeup: Introduce the TASK_RTLOCK_WAIT state
# bit") and TASK_FROZEN (since Linux commit f5d39b020809 ("freezer,sched:
# Rewrite core freezer logic"), v6.1) show as D; on older kernels both bits
# are unused, so testing them is harmless.
TASK_SHOWN_AS_D = 0x1000 | 0x8000
PF_KTHREAD = 0x00200000

T = "struct task_struct"


@dataclass(frozen=True)
class TaskLayout:
    """Where kd-ps finds what it needs in a ``struct task_struct``."""

    state: Field  # __state (v5.14+) or state
    exit_state: Field
    flags: Field
    pid: Field
    tgid: Field
    comm: Field
    real_parent: Field
    tasks: Field  # tasks.next
    cpu: Field  # thread_info.cpu or cpu
    thread_group: Field | None = None  # thread_group.next (gone in v6.7)
    on_cpu: Field | None = None
    # A group's threads hang on signal->thread_head by thread_node since commit
    # 0c740d0afc3b ("introduce for_each_thread() to replace the buggy
    # while_each_thread()", v3.14); thread_group went in 8e1f385104ac (v6.7).
    thread_node: Field | None = None  # thread_node.next
    signal: Field | None = None  # struct signal_struct *
    thread_head: int | None = None  # offset of thread_head in struct signal_struct

    def read_span(self) -> tuple[int, int]:
        return span([self.state, self.exit_state, self.flags, self.pid, self.tgid, self.comm,
                     self.real_parent, self.tasks, self.cpu, self.thread_group, self.on_cpu,
                     self.thread_node, self.signal])


def task_layout(di: Debuginfo) -> TaskLayout:
    """Where this kernel keeps what a TaskRecord needs in ``struct task_struct``."""
    # Since Linux commit 2f064a59a11f ("sched: Change task_struct::state")
    # (v5.14) the state is __state.
    state = di.member(T, "__state") or require(di, T, "state")
    # Since Linux commit bcf9033e5449 ("sched: move CPU field back into
    # thread_info if THREAD_INFO_IN_TASK") (v5.16) the CPU is in thread_info.
    cpu = di.member(T, "thread_info.cpu") or require(di, T, "cpu")
    thread_group = di.member(T, "thread_group")
    thread_node = di.member(T, "thread_node")
    return TaskLayout(
        state=state, exit_state=require(di, T, "exit_state"), flags=require(di, T, "flags"),
        pid=require(di, T, "pid"), tgid=require(di, T, "tgid"), comm=require(di, T, "comm"),
        real_parent=require(di, T, "real_parent"), tasks=pointer_at(require(di, T, "tasks")), cpu=cpu,
        thread_group=pointer_at(thread_group) if thread_group else None,
        on_cpu=di.member(T, "on_cpu"),  # SMP kernels only
        thread_node=pointer_at(thread_node) if thread_node else None,
        signal=require(di, T, "signal") if thread_node else None,
        thread_head=require(di, "struct signal_struct", "thread_head").offset if thread_node else None,
    )


@dataclass(frozen=True)
class RawTask:
    address: int
    pid: int
    tgid: int
    state: int
    exit_state: int
    flags: int
    comm: str
    real_parent: int
    tasks_next: int
    thread_group_next: int | None
    cpu: int
    on_cpu: bool
    thread_node_next: int | None = None
    signal: int | None = None


def decode_task(buf: bytes, address: int, layout: TaskLayout, start: int = 0) -> RawTask:
    """``buf`` holds the task's bytes from offset ``start`` on."""
    b = -start
    return RawTask(
        address=address,
        pid=layout.pid.get(buf, b),
        tgid=layout.tgid.get(buf, b),
        state=layout.state.get(buf, b),
        exit_state=layout.exit_state.get(buf, b),
        flags=layout.flags.get(buf, b),
        comm=layout.comm.cstr(buf, b),
        real_parent=layout.real_parent.get(buf, b),
        tasks_next=layout.tasks.get(buf, b),
        thread_group_next=layout.thread_group.get(buf, b) if layout.thread_group else None,
        cpu=layout.cpu.get(buf, b),
        on_cpu=bool(layout.on_cpu.get(buf, b)) if layout.on_cpu else False,
        thread_node_next=layout.thread_node.get(buf, b) if layout.thread_node else None,
        signal=layout.signal.get(buf, b) if layout.signal else None,
    )


#: No real kernel has this many tasks: a list that goes on is corrupt memory.
MAX_TASKS = 1_000_000


def for_each_task(read_task: Callable[[int], RawTask], read_u64: Callable[[int], int], init_task: int,
                  layout: TaskLayout) -> list[RawTask]:
    """Every task: the group leaders on init_task.tasks, each followed by its
    other threads, from signal->thread_head where the kernel has it, else
    from thread_group.
    A cycle that does not come back to its head (memory read mid-change, or
    corrupt) ends that walk instead of looping."""
    out: list[RawTask] = []
    seen: set[int] = set()

    def add(addr: int) -> RawTask | None:
        if addr in seen or len(out) >= MAX_TASKS:
            return None
        t = read_task(addr)
        out.append(t)
        seen.add(addr)
        return t

    addr = init_task
    while (leader := add(addr)) is not None:
        if layout.thread_node is not None and layout.thread_head is not None and leader.signal:
            head = leader.signal + layout.thread_head
            node = read_u64(head)
            while node and node != head:
                task = node - layout.thread_node.offset
                if task == leader.address:
                    node = leader.thread_node_next
                    continue
                t = add(task)
                if t is None:
                    break
                node = t.thread_node_next
        elif layout.thread_group is not None:
            t = leader
            while t.thread_group_next and t.thread_group_next - layout.thread_group.offset != addr:
                t = add(t.thread_group_next - layout.thread_group.offset)
                if t is None:
                    break
        addr = leader.tasks_next - layout.tasks.offset
        if addr == init_task:
            break
    return out


def state_letter(state: int, exit_state: int = 0) -> str:
    """The letter /proc/PID/stat shows: fs/proc/array.c get_task_state(), by
    include/linux/sched.h __task_state_index()."""
    s = (state | exit_state) & TASK_REPORT
    if state & TASK_IDLE == TASK_IDLE:
        s = TASK_REPORT_IDLE
    if state & TASK_SHOWN_AS_D:
        s = TASK_UNINTERRUPTIBLE
    return TASK_STATE_LETTERS[s.bit_length()]


def parent_tgid(read: Callable[[int, int], bytes], raw: RawTask, layout: TaskLayout) -> int:
    """The tgid of ``raw``'s real parent, read from the parent's task_struct."""
    return layout.tgid.get(read(raw.real_parent + layout.tgid.offset, layout.tgid.size), -layout.tgid.offset)


def task_record(raw: RawTask, ppid: int) -> TaskRecord:
    """The record of one task. ``ppid`` is the tgid of its real parent, as
    fs/proc/array.c do_task_stat() shows it (task_tgid_nr_ns(real_parent)):
    a child forked by a non-leader thread shows that thread's process, not
    the thread; the idle task is its own parent (tgid 0)."""
    return TaskRecord(pid=raw.pid, tgid=raw.tgid, ppid=ppid, state=state_letter(raw.state, raw.exit_state),
                      cpu=raw.cpu, comm=raw.comm, address=raw.address,
                      is_kthread=bool(raw.flags & PF_KTHREAD), on_cpu=raw.on_cpu)


def to_records(raws: list[RawTask], read: Callable[[int, int], bytes], layout: TaskLayout) -> list[TaskRecord]:
    """Records in walk order; a parent's tgid comes from the walk when the
    parent is in it, else from memory."""
    tgid_of = {r.address: r.tgid for r in raws}
    return [task_record(r, tgid_of[r.real_parent] if r.real_parent in tgid_of else parent_tgid(read, r, layout))
            for r in raws]


def filter_tasks(tasks, *, states: str | None = None, comm: str | None = None,
                 pids: set[int] | None = None, kthreads: bool | None = None) -> list[TaskRecord]:
    """``states``: letters to keep ("RD"); ``comm``: a glob on the name."""
    import fnmatch

    out = []
    for t in tasks:
        if states and t.state not in states:
            continue
        if comm and not fnmatch.fnmatchcase(t.comm, comm):
            continue
        if pids is not None and t.pid not in pids and t.tgid not in pids:
            continue
        if kthreads is not None and t.is_kthread != kthreads:
            continue
        out.append(t)
    return out
