"""The engines agree on the same kernel state: the shared guest is stopped,
kd-ps and kd-lsmod read it in gdb (through the gdbstub), QEMU dumps the same
stopped RAM, and kdebug's drgn collectors read the dump. Their records must be
equal, field for field, on each kernel generation. drgn walks the PID hash
and gdb the task list, so the walks are independent; what a field means is
one function for both (kdebug.decode)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import need_tool
from tests.gdb.live import attach_gdb, kd_records, read_truth, release

TASK_FIELDS = ("pid", "tgid", "ppid", "state", "comm", "cpu", "address", "is_kthread", "on_cpu")


@pytest.fixture(scope="module")
def engines(shared_guest, tmp_path_factory):
    """(truth, gdb's tasks and modules, drgn's tasks and modules) of one stopped moment."""
    need_tool("gdb")
    from kdebug.analysis.modules import collect_modules
    from kdebug.analysis.program import open_program
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
        dump_memory(shared_guest.session.qmp_socket, vmcore)  # the same stopped RAM
    finally:
        release(shared_guest, driver)  # detach, QMP cont
        shared_guest.run("kill " + " ".join(map(str, [*truth.sleepers, truth.threaded])))
    assert vmcore.stat().st_mode & 0o777 == 0o600
    try:
        prog, _warnings = open_program(open_dump(vmcore, vmlinux=kernel.vmlinux))
        drgn_tasks = [t.to_dict() for t in collect_tasks(prog)]
        drgn_modules = [m.to_dict() for m in collect_modules(prog)]
    finally:
        vmcore.unlink()
    return truth, gdb_tasks, gdb_modules, drgn_tasks, drgn_modules


def test_tasks_are_equal(engines):
    truth, gdb_tasks, _, drgn_tasks, _ = engines
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
    truth, _, gdb_modules, _, drgn_modules = engines
    ours = {m["name"]: m for m in gdb_modules}
    theirs = {m["name"]: m for m in drgn_modules}
    assert set(ours) == set(theirs) == {m[0] for m in truth.modules}
    assert {n: (ours[n], theirs[n]) for n in ours if ours[n] != theirs[n]} == {}
    assert any(m["used_by"] for m in ours.values())  # holders are compared, not only empty lists
