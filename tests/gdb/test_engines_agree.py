"""The engines agree on the same kernel state: the shared guest is stopped,
kd-ps, kd-lsmod, kd-dmesg and kd-bt read it in gdb (through the gdbstub),
QEMU dumps the same stopped RAM, and kdebug's drgn collectors read the dump.
Their records must be equal, field for field, on each kernel generation.
drgn walks the PID hash and gdb the task list, so the walks are independent;
what a field means is one function for both (kdebug.decode). The backtraces
are unwound twice (gdb's DWARF CFI unwinder, drgn's ORC one) and named twice
(kdebug.decode.frames over the ELF file in gdb, drgn's symbol lookup)."""

from __future__ import annotations

import os
from typing import NamedTuple

import pytest

from tests.conftest import need_tool
from tests.gdb.live import attach_gdb, kd_records, read_truth, release

TASK_FIELDS = ("pid", "tgid", "ppid", "state", "comm", "cpu", "address", "is_kthread", "on_cpu")
FRAME_FIELDS = ("index", "pc", "function", "module", "inline", "offset", "size", "file", "line")


@pytest.fixture(scope="module")
def engines(shared_guest, tmp_path_factory):
    """Tasks, modules, log and backtraces from gdb and from drgn of one stopped moment."""
    need_tool("gdb")
    from drgn.helpers.linux.pid import find_task

    from kdebug.analysis.log import collect_log
    from kdebug.analysis.modules import collect_modules
    from kdebug.analysis.program import open_program
    from kdebug.analysis.stack import task_backtrace
    from kdebug.analysis.tasks import collect_tasks
    from kdebug.capture.qemudump import dump_memory
    from kdebug.vmcore.locate import open_dump

    kernel = shared_guest.prepared.kernel
    # The QEMU dump carries VMCOREINFO (which drgn needs) through the
    # vmcoreinfo device, which the guest's qemu_fw_cfg driver fills.
    assert "qemu_fw_cfg" in {line.split()[0] for line in shared_guest.run("cat /proc/modules").output.splitlines()}
    truth = read_truth(shared_guest)
    workdir = tmp_path_factory.mktemp("engines")
    os.chmod(workdir, 0o700)
    vmcore = workdir / "vmcore"
    driver, _ = attach_gdb(shared_guest, kernel)  # QMP stop, then gdb
    try:
        gdb_tasks = kd_records(driver, "kd-ps")
        gdb_modules = kd_records(driver, "kd-lsmod")
        gdb_log = kd_records(driver, "kd-dmesg")
        # Sleeping in wait4, nanosleep and a futex; a kernel thread; pid 0: CPU 0 running its idle task.
        bt_pids = [0, 1, 2, truth.sleepers[0], truth.threaded]
        gdb_bts = {pid: kd_records(driver, f"kd-bt {pid}") for pid in bt_pids}
        dump_memory(shared_guest.session.qmp_socket, vmcore)  # the same stopped RAM
    finally:
        release(shared_guest, driver)  # detach, QMP cont
        shared_guest.run("kill " + " ".join(map(str, [*truth.sleepers, truth.threaded])))
    assert vmcore.stat().st_mode & 0o777 == 0o600
    try:
        prog, _warnings = open_program(open_dump(vmcore, vmlinux=kernel.vmlinux))
        drgn_tasks = [t.to_dict() for t in collect_tasks(prog)]
        drgn_modules = [m.to_dict() for m in collect_modules(prog)]
        drgn_log = [r.to_dict() for r in collect_log(prog)]
        drgn_bts = {}
        for pid in bt_pids:
            task = prog["init_task"].address_of_() if pid == 0 else find_task(prog, pid)
            drgn_bts[pid] = [f.to_dict() for f in task_backtrace(prog, task)]
    finally:
        vmcore.unlink()
    return Engines(truth, gdb_tasks, gdb_modules, drgn_tasks, drgn_modules, gdb_log, drgn_log, gdb_bts, drgn_bts)


class Engines(NamedTuple):
    truth: object
    gdb_tasks: list
    gdb_modules: list
    drgn_tasks: list
    drgn_modules: list
    gdb_log: list
    drgn_log: list
    gdb_bts: dict
    drgn_bts: dict


def test_tasks_are_equal(engines):
    truth, gdb_tasks, _, drgn_tasks, _ = engines[:5]
    # drgn's walk leaves out the idle task (pid 0), which is in no PID hash.
    ours = {t["pid"]: {f: t[f] for f in TASK_FIELDS} for t in gdb_tasks if t["pid"] != 0}
    theirs = {t["pid"]: {f: t[f] for f in TASK_FIELDS} for t in drgn_tasks}
    assert set(ours) == set(theirs)
    assert {p: (ours[p], theirs[p]) for p in ours if ours[p] != theirs[p]} == {}
    # What makes the comparison worth it: threads, and a child of a non-leader
    # thread (ppid = that thread's tgid; real_parent->pid would differ).
    assert len(ours) > 40 and {truth.threaded, truth.child, *truth.sleepers} <= set(ours)
    assert ours[truth.child]["ppid"] == truth.threaded
    assert {t["state"] for t in ours.values()} >= {"S", "I"}


def test_modules_are_equal(engines):
    truth, _, gdb_modules, _, drgn_modules = engines[:5]
    ours = {m["name"]: m for m in gdb_modules}
    theirs = {m["name"]: m for m in drgn_modules}
    assert set(ours) == set(theirs) == {m[0] for m in truth.modules}
    assert {n: (ours[n], theirs[n]) for n in ours if ours[n] != theirs[n]} == {}
    assert any(m["used_by"] for m in ours.values())  # holders are compared, not only empty lists


def test_logs_are_equal(engines):
    """kd-dmesg and the report's log (drgn's get_printk_records), record for record."""
    assert len(engines.gdb_log) > 100
    assert engines.gdb_log == engines.drgn_log


def test_backtraces_are_equal(engines):
    """kd-bt and the report's backtrace of the same task, frame for frame and
    field for field: function, module, inline, offset, size, file and line."""
    diffs = {}
    for pid, ours in engines.gdb_bts.items():
        theirs = engines.drgn_bts[pid]
        a = [{f: fr[f] for f in FRAME_FIELDS} for fr in ours]
        b = [{f: fr[f] for f in FRAME_FIELDS} for fr in theirs]
        if a != b:
            diffs[pid] = [(x, y) for x, y in zip(a, b, strict=False) if x != y] or (len(a), len(b))
    assert diffs == {}
    # What makes it worth it: deep stacks ending in the syscall entry, sizes, lines, inlined frames.
    init = engines.gdb_bts[1]
    assert len(init) >= 5 and all(f["size"] > 0 and f["offset"] < f["size"] for f in init if not f["inline"])
    assert any(f["function"].startswith("entry_SYSCALL_64") for f in init)
    assert any(f["inline"] for bt in engines.gdb_bts.values() for f in bt)
    assert all(f["line"] > 0 for f in init if f["function"] not in ("entry_SYSCALL_64",))
