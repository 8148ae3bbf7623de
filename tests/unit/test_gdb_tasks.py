"""task_struct decoding from bytes, with a layout like the one gdb reads."""

import struct

from kdebug.decode.structs import Field, span
from kdebug.decode.tasks import (
    PF_KTHREAD,
    TaskLayout,
    decode_task,
    filter_tasks,
    state_letter,
    task_layout,
    to_records,
)
from tests.unit.fake_debuginfo import FakeDebuginfo

LAY = TaskLayout(
    state=Field(24, 4), exit_state=Field(100, 4), flags=Field(44, 4), pid=Field(200, 4),
    tgid=Field(204, 4), comm=Field(300, 16), real_parent=Field(216, 8), tasks=Field(120, 8),
    cpu=Field(16, 4), thread_group=Field(240, 8), on_cpu=Field(52, 4),
)


def task_bytes(pid, tgid, comm, state=1, exit_state=0, flags=0, parent=0, nxt=0, cpu=0, on_cpu=0,
               tg=0) -> bytes:
    b = bytearray(400)
    struct.pack_into("<I", b, 24, state)
    struct.pack_into("<I", b, 100, exit_state)
    struct.pack_into("<I", b, 44, flags)
    struct.pack_into("<ii", b, 200, pid, tgid)
    b[300:316] = comm.encode().ljust(16, b"\0")
    struct.pack_into("<Q", b, 216, parent)
    struct.pack_into("<Q", b, 120, nxt)
    struct.pack_into("<I", b, 16, cpu)
    struct.pack_into("<Q", b, 240, tg)
    struct.pack_into("<I", b, 52, on_cpu)
    return bytes(b)


def test_span_covers_every_field():
    start, length = LAY.read_span()
    assert (start, length) == (16, 316 - 16)
    assert span([Field(8, 8), None, Field(0, 4)]) == (0, 16)


def test_decode_from_a_partial_read():
    full = task_bytes(42, 42, "sleepy", state=1, flags=PF_KTHREAD, parent=0x1000, nxt=0x2078, cpu=1, on_cpu=1)
    start, length = LAY.read_span()
    t = decode_task(full[start:start + length], 0x5000, LAY, start)
    assert (t.pid, t.tgid, t.comm, t.cpu, t.on_cpu, t.real_parent, t.tasks_next) == \
        (42, 42, "sleepy", 1, True, 0x1000, 0x2078)


def test_state_letters_follow_task_state_index():
    # Values of include/linux/sched.h (v6.1).
    assert state_letter(0) == "R"
    assert state_letter(1) == "S"
    assert state_letter(2) == "D"
    assert state_letter(4) == "T"
    assert state_letter(8) == "t"
    assert state_letter(0x80, 16) == "X"
    assert state_letter(0x80, 32) == "Z"
    assert state_letter(0x40) == "P"
    assert state_letter(0x402) == "I"
    assert state_letter(0x1002) == "D"  # TASK_RTLOCK_WAIT shows as D
    assert state_letter(0x8001) == "D"  # TASK_FROZEN too
    assert state_letter(0x8402) == "D"  # frozen beats idle, as in __task_state_index()
    assert state_letter(0x100 | 0x4) == "T"  # TASK_STOPPED = TASK_WAKEKILL | __TASK_STOPPED
    assert state_letter(0x80, 0) == "R"  # TASK_DEAD alone is not reported


def test_records_take_ppid_from_the_parents_tgid():
    lay = LAY
    # 9 was forked by thread 8 of process 7: /proc shows ppid 7, not 8.
    mem = {0x900: task_bytes(30, 30, "outside")}  # a parent the walk did not reach
    raws = [decode_task(task_bytes(0, 0, "swapper/0", state=0, parent=0x100), 0x100, lay),
            decode_task(task_bytes(1, 1, "init", parent=0x100), 0x200, lay),
            decode_task(task_bytes(7, 7, "sh", parent=0x200), 0x300, lay),
            decode_task(task_bytes(8, 7, "sh-thread", parent=0x200), 0x400, lay),
            decode_task(task_bytes(2, 2, "kthreadd", parent=0x100, flags=PF_KTHREAD), 0x500, lay),
            decode_task(task_bytes(9, 9, "child", parent=0x400), 0x600, lay),
            decode_task(task_bytes(31, 31, "orphan", parent=0x900), 0x700, lay)]

    def read(addr, size):
        base = next(a for a in mem if a <= addr < a + 400)
        return mem[base][addr - base:addr - base + size]

    recs = to_records(raws, read, lay)
    assert [(r.pid, r.ppid) for r in recs] == [(0, 0), (1, 0), (7, 1), (8, 1), (2, 0), (9, 7), (31, 30)]
    assert [r.is_kthread for r in recs] == [False, False, False, False, True, False, False]
    assert [r.pid for r in filter_tasks(recs, comm="sh*")] == [7, 8]
    assert [r.pid for r in filter_tasks(recs, pids={7})] == [7, 8]  # a tgid selects its threads
    assert [r.pid for r in filter_tasks(recs, states="R")] == [0]
    assert [r.pid for r in filter_tasks(recs, kthreads=True)] == [2]


# --- the walk: leaders on init_task.tasks, threads on signal->thread_head ------

def _walk_layout(**kw) -> TaskLayout:
    base = dict(state=Field(0, 4), exit_state=Field(4, 4), flags=Field(8, 4), pid=Field(12, 4),
                tgid=Field(16, 4), comm=Field(20, 16), real_parent=Field(40, 8), tasks=Field(0x100, 8),
                cpu=Field(48, 4))
    return TaskLayout(**base, **kw)


def _raw(addr, pid, tgid, tasks_next, thread_node_next=None, signal=None, thread_group_next=None):
    from kdebug.decode.tasks import RawTask

    return RawTask(address=addr, pid=pid, tgid=tgid, state=0, exit_state=0, flags=0, comm=f"t{pid}",
                   real_parent=0, tasks_next=tasks_next, thread_group_next=thread_group_next, cpu=0,
                   on_cpu=False, thread_node_next=thread_node_next, signal=signal)


def test_walk_threads_from_signal_thread_head():
    """init (pid 0, alone) -> proc 10 with threads 11 and 12 -> back to init.
    thread_node at +0x200 of each task; thread_head at +0x10 of signal."""
    from kdebug.decode.tasks import for_each_task

    lay = _walk_layout(thread_node=Field(0x200, 8), signal=Field(0x300, 8), thread_head=0x10)
    INIT, P, T1, T2, SIG0, SIG = 0x1000, 0x2000, 0x3000, 0x4000, 0x9000, 0xA000
    head0, head = SIG0 + 0x10, SIG + 0x10
    tasks = {
        INIT: _raw(INIT, 0, 0, P + 0x100, thread_node_next=head0, signal=SIG0),
        # the leader sits on its own list, between two threads
        P: _raw(P, 10, 10, INIT + 0x100, thread_node_next=T2 + 0x200, signal=SIG),
        T1: _raw(T1, 11, 10, 0, thread_node_next=P + 0x200, signal=SIG),
        T2: _raw(T2, 12, 10, 0, thread_node_next=head, signal=SIG),
    }
    mem = {head0: INIT + 0x200, head: T1 + 0x200}
    got = for_each_task(tasks.__getitem__, mem.__getitem__, INIT, lay)
    assert [t.pid for t in got] == [0, 10, 11, 12]


def test_walk_with_thread_group_and_a_broken_cycle():
    from kdebug.decode.tasks import for_each_task

    lay = _walk_layout(thread_group=Field(0x180, 8))
    INIT, P, T1 = 0x1000, 0x2000, 0x3000
    tasks = {
        INIT: _raw(INIT, 0, 0, P + 0x100),
        P: _raw(P, 10, 10, INIT + 0x100, thread_group_next=T1 + 0x180),
        # T1's next points at itself (memory changing under us): the walk must end
        T1: _raw(T1, 11, 10, 0, thread_group_next=T1 + 0x180),
    }
    got = for_each_task(tasks.__getitem__, {}.__getitem__, INIT, lay)
    assert [t.pid for t in got] == [0, 10, 11]


# --- the layout: one feature detection for gdb and drgn -----------------------

V6_1 = {  # struct task_struct members as the 6.1 debuginfo has them (offsets made up)
    "__state": (24, 4), "exit_state": (100, 4), "flags": (44, 4), "pid": (200, 4), "tgid": (204, 4),
    "comm": (300, 16), "real_parent": (216, 8), "tasks": (120, 16), "thread_info": (0, 24),
    "thread_info.cpu": (16, 4), "thread_group": (240, 16), "thread_node": (260, 16), "signal": (280, 8),
    "on_cpu": (52, 4),
}


def test_layout_follows_the_members_the_kernel_has():
    di = FakeDebuginfo({"struct task_struct": V6_1, "struct signal_struct": {"thread_head": (16, 16)}})
    lay = task_layout(di)
    assert (lay.state, lay.cpu, lay.tasks, lay.thread_head) == (Field(24, 4), Field(16, 4), Field(120, 8), 16)
    assert lay.thread_group == Field(240, 8) and lay.thread_node == Field(260, 8)
    # v6.7 dropped thread_group; before v5.14 the state was "state", before
    # v5.16 the CPU was task_struct.cpu; a UP kernel has no on_cpu.
    old = {k: v for k, v in V6_1.items() if k not in ("__state", "thread_info", "thread_info.cpu", "on_cpu")}
    old |= {"state": (8, 8), "cpu": (60, 4)}
    lay = task_layout(FakeDebuginfo({"struct task_struct": old,
                                     "struct signal_struct": {"thread_head": (16, 16)}}))
    assert (lay.state, lay.cpu, lay.on_cpu) == (Field(8, 8), Field(60, 4), None)
    new = {k: v for k, v in V6_1.items() if k != "thread_group"}
    lay = task_layout(FakeDebuginfo({"struct task_struct": new, "struct signal_struct": {"thread_head": (16, 16)}}))
    assert lay.thread_group is None and lay.thread_node == Field(260, 8)


def test_layout_without_a_member_every_kernel_has_is_one_clear_error():
    import pytest

    from kdebug.errors import KernelError

    broken = {k: v for k, v in V6_1.items() if k != "pid"}
    with pytest.raises(KernelError, match="struct task_struct has no member pid"):
        task_layout(FakeDebuginfo({"struct task_struct": broken}))
