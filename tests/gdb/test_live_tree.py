"""kd- commands on the small debug kernel from `kdebug kernel build` (KASLR
on, scripts_gdb built), checked against the kernel's own lx- commands."""

from __future__ import annotations

import re

import pytest

from tests.conftest import STRICT, need, need_tool
from tests.gdb.live import EXTRA_THREADS, attach_gdb, kd_records, link_stext, read_truth, release, threads_helper

pytestmark = pytest.mark.one_kernel  # boots the built debug tree, not a distro kernel


@pytest.fixture(scope="module")
def tree():
    import os
    from pathlib import Path

    from kdebug.kbuild import DEFAULT_SOURCE, build_kernel, built_tree

    t = Path(os.environ["KDEBUG_TEST_TREE"]) if os.environ.get("KDEBUG_TEST_TREE") else built_tree()
    if t is None:
        need(STRICT and DEFAULT_SOURCE.exists(),
             "the debug kernel is not built yet (scripts/setup.sh builds it: kdebug kernel build)")
        t = build_kernel().tree  # CI: setup normally built it already
    return t


@pytest.fixture(scope="module")
def live(tree):
    need_tool("gdb", "qemu-system-x86_64")
    from kdebug.capture.module import trigger_module
    from kdebug.capture.triggers import MODULE_GUEST_PATH
    from kdebug.guest.qemu import boot
    from kdebug.kernel import find_kernel
    from kdebug.plan.prepare import LaunchOptions, prepare
    from kdebug.session import new_session

    # One out-of-tree module, built against the tree, so that the module
    # commands compare a real list (the tiny kernel has no modules of its own).
    ko = trigger_module(find_kernel(None, None, tree))
    session = new_session()
    files = {MODULE_GUEST_PATH.lstrip("/"): ko, **threads_helper()}
    prep = prepare(LaunchOptions(tree=tree, extra_files=files), session)
    guest = boot(prep.plan, session, timeout=120)
    try:
        assert guest.run(f"insmod {MODULE_GUEST_PATH}").status == 0
        truth = read_truth(guest)
        driver, offset = attach_gdb(guest, prep.kernel)
        try:
            yield driver, truth, offset, prep
        finally:
            release(guest, driver)
    finally:
        guest.close()
        session.remove()


def test_busybox_recipe_boots_without_modules(live):
    _, truth, _, prep = live
    # its drivers are built in: no .ko went into the initramfs (the recipe's
    # other modules are not configured in this tree, and it says so)
    assert not [f for f in prep.initramfs.files if f.startswith("lib/modules/")]
    assert any("modules not in" in w and "qemu_fw_cfg" in w for w in prep.initramfs.warnings)
    assert [m[0] for m in truth.modules] == ["kdebug_trigger"]  # only the one the fixture loaded


def test_kaslr_offset_matches_kallsyms(live):
    driver, truth, offset, prep = live
    assert offset == truth.stext - link_stext(prep.kernel)
    assert driver.run("p/x (unsigned long)&_stext").endswith(f"= {truth.stext:#x}")


def test_kd_ps_agrees_with_lx_ps_and_proc(live):
    driver, truth, _, _ = live
    kd = kd_records(driver, "kd-ps")
    lx = []
    for line in driver.run("lx-ps").splitlines()[1:]:
        m = re.match(r"^(0x[0-9a-f]+)\s+(\d+)\s+(.*)$", line.strip())
        assert m, line
        lx.append((int(m.group(1), 16), int(m.group(2)), m.group(3)))
    assert [(t["address"], t["pid"], t["comm"]) for t in kd] == lx
    kdp = {t["pid"]: t for t in kd}
    for pid, (comm, _state, ppid) in truth.tasks.items():
        assert kdp[pid]["ppid"] == ppid and comm.startswith(kdp[pid]["comm"])
    # every thread of the threaded process, on its group
    group = [t["pid"] for t in kd if t["tgid"] == truth.threaded]
    assert len(group) == EXTRA_THREADS + 1 and set(group) <= set(truth.tasks)


def test_kd_dmesg_agrees_with_lx_dmesg(live):
    driver, _, _, _ = live
    ours = []
    for r in kd_records(driver, "kd-dmesg"):
        ours += [(r["timestamp_ns"] // 1000, part) for part in r["text"].split("\n")]
    theirs = []
    for line in driver.run("lx-dmesg").splitlines():
        m = re.match(r"^\[\s*(\d+\.\d{6})\] (.*)$", line)
        assert m, line
        theirs.append((round(float(m.group(1)) * 1e6), m.group(2)))
    assert len(ours) == len(theirs) > 50
    for (t1, a), (t2, b) in zip(ours, theirs, strict=True):
        assert a == b and abs(t1 - t2) <= 1  # lx-dmesg rounds a float; the kernel truncates


def test_kd_lsmod_agrees_with_lx_lsmod(live):
    driver, truth, _, _ = live
    lx = [line.split() for line in driver.run("lx-lsmod").splitlines()[1:] if line.strip()]
    ours = kd_records(driver, "kd-lsmod")
    assert [m["name"] for m in ours] == [row[1] for row in lx] == [m[0] for m in truth.modules]
    # lx-lsmod: Address Module Size Used by; /proc/modules: name size refcount deps state address
    for m, row, proc in zip(ours, lx, truth.modules, strict=True):
        assert int(row[0], 16) == m["address"] == int(proc[5], 16)
        assert int(row[2]) == m["size"] == int(proc[1])


def test_per_cpu_and_current_agree_with_lx(live):
    driver, truth, _, _ = live
    for cpu in range(truth.ncpus):
        ours = driver.run(f'p/x (unsigned long)&$kd_per_cpu("runqueues", {cpu})').split("=")[1]
        theirs = driver.run(f'p/x (unsigned long)&$lx_per_cpu("runqueues", {cpu})').split("=")[1]
        assert ours == theirs
        assert driver.run(f'p $kd_per_cpu("runqueues", {cpu}).cpu').endswith(f"= {cpu}")
        assert driver.run(f"p/x (unsigned long)$kd_current({cpu})").split("=")[1] == \
            driver.run(f"p/x (unsigned long)&$lx_current({cpu})").split("=")[1]  # lx_current is the struct


def test_kd_config_matches_the_tree(live):
    driver, _, _, prep = live
    cfg = (prep.kernel.tree / ".config").read_text()
    assert driver.run("kd-config KGDB GDB_SCRIPTS") == "CONFIG_KGDB=y\nCONFIG_GDB_SCRIPTS=y"
    assert driver.run("kd-config").strip().splitlines()[-1] in cfg


def test_kd_version_matches_the_tree(live):
    driver, truth, _, prep = live
    assert driver.run("kd-version") == truth.version
    assert prep.kernel.release in truth.version


def test_kd_bt_with_frame_pointers(live):
    driver, _, _, _ = live
    bt = driver.run("kd-bt 1")
    names = re.findall(r"^#\d+\s+0x[0-9a-f]+ (\S+?)\+", bt, re.M)
    assert "__schedule" in names and ("do_wait" in names or "kernel_wait4" in names), bt
