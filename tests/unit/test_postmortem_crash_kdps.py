"""kdebug's crash extension (kdps) output and the cross-check built on it, on
transcripts recorded from a real QEMU dump of the Debian 6.1 kernel
(tests/fixtures/crash/sysrq-kdps: crash 8.0.2's outputs and console, and
drgn's task list of the same dump as the truth)."""

from __future__ import annotations

import json

from kdebug.crash.crosscheck import cross_check
from kdebug.crash.parse import parse_kdps
from kdebug.crash.runner import CrashRun
from kdebug.model import TaskRecord
from kdebug.report.model import PanicInfo, SystemInfo
from tests.conftest import FIXTURES

SYSRQ = FIXTURES / "crash" / "sysrq-kdps"


def _outputs() -> dict[str, str]:
    return {p.stem: p.read_text() for p in SYSRQ.glob("*.txt") if p.stem != "console"}


def _drgn_tasks() -> list[TaskRecord]:
    return [TaskRecord(**t) for t in json.loads((SYSRQ / "drgn-tasks.json").read_text())]


def _key(t: TaskRecord) -> tuple:
    return (t.pid, t.tgid, t.ppid, t.state, t.comm, t.address, t.is_kthread, t.cpu)


def test_kdps_equals_drgn_on_debian_61():
    walk = parse_kdps((SYSRQ / "kdps.txt").read_text())
    assert walk.complete and walk.walk == "thread_head" and walk.error == ""
    # kdps starts at init_task (the idle task, pid 0), which drgn's for_each_task leaves out.
    assert walk.tasks[0].pid == 0 and walk.tasks[0].comm == "swapper/0" and walk.tasks[0].is_kthread
    drgn = _drgn_tasks()
    assert len(drgn) == len(walk.user_visible) == 54
    assert sorted(map(_key, walk.user_visible)) == sorted(map(_key, drgn))


def test_kdps_fields():
    by_pid = {t.pid: t for t in parse_kdps((SYSRQ / "kdps.txt").read_text()).tasks}
    init, kthreadd, sh = by_pid[1], by_pid[2], by_pid[106]
    assert (init.comm, init.ppid, init.state, init.is_kthread) == ("init", 0, "S", False)
    assert (kthreadd.ppid, kthreadd.is_kthread) == (0, True)
    assert (sh.comm, sh.ppid, sh.state, sh.on_cpu) == ("sh", 1, "R", True)
    assert by_pid[3].state == "I"  # TASK_IDLE (0x402), not D


def test_kdps_on_612_walks_thread_head():
    # crash 8.0.2 opened this 6.12 dump only when forced (--kaslr=auto
    # --no_modules); kdps still walked it: v6.7 dropped thread_group.
    walk = parse_kdps((FIXTURES / "crash" / "kdps" / "6.12-kaslr-auto.txt").read_text())
    assert walk.complete and walk.walk == "thread_head" and len(walk.user_visible) == 62


def test_kdps_escaped_comm_and_cut_walk():
    text = ("kdps format=1 walk=thread_group\n"
            "task=ffff1 pid=7 tgid=7 ppid=1 state=0 exit_state=20 flags=0 cpu=1 on_cpu=0 real_parent=ffff0 "
            "comm=a\\x20b\\x5c\n"
            'kdps end complete=0 tasks=1 error="cannot read task_struct at ffff2"\n')
    walk = parse_kdps(text)
    (t,) = walk.tasks
    assert t.comm == "a b\\" and t.state == "Z"  # EXIT_ZOMBIE in exit_state
    assert not walk.complete and walk.error == "cannot read task_struct at ffff2"


def test_kdps_without_end_line_is_incomplete():
    lines = (SYSRQ / "kdps.txt").read_text().splitlines()[:-1]
    walk = parse_kdps("\n".join(lines))
    assert not walk.complete and "before its end line" in walk.error and len(walk.tasks) == 55


def _report_args():
    system = SystemInfo(release="6.1.0-57-cloud-amd64", cpus=2)
    drgn = _drgn_tasks()
    sh = next(t for t in drgn if t.pid == 106)
    panic = PanicInfo(message="sysrq triggered crash", reason="sysrq", cpu=0, task=sh)
    return system, panic, drgn


def test_cross_check_counts_tasks_with_kdps():
    system, panic, drgn = _report_args()
    run = CrashRun(True, 5.0, _outputs(), console=(SYSRQ / "console.txt").read_text(), version="crash 8.0.2")
    rows = {r.item: r for r in cross_check(system, panic, drgn, [], run, pid_flexible=True)}
    assert (rows["task count"].drgn, rows["task count"].crash, rows["task count"].verdict) == ("54", "54", "agree")
    assert rows["tasks (pid tgid ppid state comm address)"].verdict == "agree"
    own = rows["crash's own task table"]
    assert (own.drgn, own.crash, own.verdict) == ("54", "1", "crash-limitation")
    assert "lists 3 tasks, 2 of them idle" in own.note and "not found in PID hash" in own.note
    assert "b69f0aeb0689" in own.note and "crash 8.0.4" in own.note
    for item in ("release", "panic message", "panic task", "panic CPU", "CPUs"):
        assert rows[item].verdict == "agree", rows[item]


def test_cross_check_notes_only_what_this_dump_shows():
    system, panic, drgn = _report_args()
    outputs = _outputs()
    # A crash whose own table holds every task (plus 2 idle ones): no PID-hash row.
    outputs["sys"] = outputs["sys"].replace("TASKS: 3", "TASKS: 56")
    rows = cross_check(system, panic, drgn, [], CrashRun(True, 5.0, outputs, version="crash 9.0.0"))
    assert [r.item for r in rows if "own" in r.item] == []
    assert not any("PID hash" in r.note or "b69f0aeb0689" in r.note for r in rows)
    # Tasks missed, but struct pid is not a flexible array: the cause is not claimed.
    rows = cross_check(system, panic, drgn, [], CrashRun(True, 5.0, _outputs()), pid_flexible=False)
    own = next(r for r in rows if r.item == "crash's own task table")
    assert own.verdict == "crash-limitation" and "b69f0aeb0689" not in own.note


def test_cross_check_without_kdps_compares_crash_own_table():
    system, panic, drgn = _report_args()
    outputs = {k: v for k, v in _outputs().items() if k != "kdps"}
    outputs["sys"] = outputs["sys"].replace("TASKS: 3", "TASKS: 56")
    row = next(r for r in cross_check(system, panic, drgn, [], CrashRun(True, 5.0, outputs))
               if r.item == "task count")
    assert (row.drgn, row.crash, row.verdict) == ("54", "54", "agree") and "kdps did not run" in row.note


def test_cross_check_of_unsupported_kernel_is_empty():
    system, panic, drgn = _report_args()
    run = CrashRun(False, 3.0, unsupported="crash 8.0.2 cannot read this kernel: ...")
    assert cross_check(system, panic, drgn, [], run) == []
