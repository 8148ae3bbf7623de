"""``struct task_struct`` from raw bytes: the pure half of kd-ps / kd-task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kdebug.decode.structs import Field, span
from kdebug.model import TASK_STATE_LETTERS, TaskRecord

# include/linux/sched.h. #defines, absent from the debuginfo; their letters are
# ABI (/proc/PID/stat), so they do not move.
TASK_REPORT = 0x7F  # INTERRUPTIBLE|UNINTERRUPTIBLE|STOPPED|TRACED|EXIT_DEAD|EXIT_ZOMBIE|PARKED
TASK_UNINTERRUPTIBLE = 0x2
TASK_IDLE = 0x402  # TASK_UNINTERRUPTIBLE | TASK_NOLOAD
TASK_SHOWN_AS_D = 0x1000 | 0x8000  # TASK_RTLOCK_WAIT, TASK_FROZEN (v6.1)
PF_KTHREAD = 0x00200000


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

    def read_span(self) -> tuple[int, int]:
        return span([self.state, self.exit_state, self.flags, self.pid, self.tgid, self.comm,
                     self.real_parent, self.tasks, self.cpu, self.thread_group, self.on_cpu,
                     self.thread_node, self.signal])


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
                  layout: TaskLayout, thread_head_offset: int | None = None) -> list[RawTask]:
    """Every task: the group leaders on init_task.tasks, each followed by its
    other threads, from signal->thread_head (``thread_head_offset`` into
    struct signal_struct) where the kernel has it, else from thread_group.
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
        if layout.thread_node is not None and thread_head_offset is not None and leader.signal:
            head = leader.signal + thread_head_offset
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
    """ps's letter, as fs/proc/array.c's task_state_index() computes it."""
    if state & TASK_IDLE == TASK_IDLE:
        return "I"
    s = (state | exit_state) & TASK_REPORT
    if state & TASK_SHOWN_AS_D:
        s = TASK_UNINTERRUPTIBLE
    return TASK_STATE_LETTERS[s.bit_length()] if s else "R"


def to_records(raws: list[RawTask]) -> list[TaskRecord]:
    """Records in walk order; ppid is the real parent's tgid (0 for the idle task)."""
    tgid_of = {r.address: r.tgid for r in raws}
    out = []
    for r in raws:
        ppid = 0 if r.pid == 0 or r.real_parent == r.address else tgid_of.get(r.real_parent, 0)
        out.append(TaskRecord(pid=r.pid, tgid=r.tgid, ppid=ppid, state=state_letter(r.state, r.exit_state),
                              cpu=r.cpu, comm=r.comm, address=r.address,
                              is_kthread=bool(r.flags & PF_KTHREAD), on_cpu=r.on_cpu))
    return out


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
