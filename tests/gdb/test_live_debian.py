"""kd- commands on the Debian kernel (KASLR on, modules, ORC), in one gdb
attached to the shared guest, checked against the guest's own /proc."""

from __future__ import annotations

import json
import re

import pytest

from kdebug.errors import GdbCommandError
from tests.conftest import need_tool
from tests.gdb.live import (
    EXTRA_THREADS,
    attach_gdb,
    dmesg_lines,
    kd_records,
    link_stext,
    read_truth,
    release,
    section_of,
)


@pytest.fixture(scope="module")
def live(shared_guest):
    need_tool("gdb")
    kernel = shared_guest.prepared.kernel
    truth = read_truth(shared_guest)
    driver, offset = attach_gdb(shared_guest, kernel)
    try:
        yield driver, truth, offset, kernel
    finally:
        release(shared_guest, driver)
        shared_guest.run("kill " + " ".join(map(str, [*truth.sleepers, truth.threaded])))


def test_kaslr_offset_matches_kallsyms(live):
    driver, truth, offset, kernel = live
    assert "nokaslr" not in truth.cmdline
    assert offset == truth.stext - link_stext(kernel)
    # gdb's symbols sit where the running kernel says its text is.
    assert driver.run("p/x (unsigned long)&_stext").endswith(f"= {truth.stext:#x}")


def test_kd_ps_agrees_with_proc(live):
    driver, truth, _, _ = live
    kd = {t["pid"]: t for t in kd_records(driver, "kd-ps")}
    assert kd[0]["comm"] == "swapper/0"
    assert truth.tasks[truth.shell][0] == "sh"
    for pid, (comm, state, ppid) in truth.tasks.items():
        assert pid in kd, f"kd-ps misses pid {pid} ({comm})"
        assert kd[pid]["ppid"] == ppid, pid
        if kd[pid]["is_kthread"]:
            # /proc shows a kthread's full name (v6.1) and a kworker's current
            # workqueue ("kworker/0:1-events"); task->comm is the first 15 bytes.
            assert kd[pid]["comm"] and comm.startswith(kd[pid]["comm"]), (pid, comm)
        else:
            assert kd[pid]["comm"] == comm, pid
        if pid == truth.shell:
            # The shell slept in wait() while cat read /proc; it woke when cat
            # ended, and the stop can find it before it is back in read().
            assert state == "S" and kd[pid]["state"] in ("S", "R"), kd[pid]
        elif not kd[pid]["is_kthread"]:
            assert kd[pid]["state"] == state, (pid, comm)
    newest = max(truth.tasks)
    phantoms = [p for p in kd if p and p <= newest and p not in truth.tasks and kd[p]["comm"] != "cat"]
    assert phantoms == []
    assert {kd[p]["comm"] for p in truth.sleepers} == {"sleep"}
    assert kd[2]["is_kthread"] and not kd[1]["is_kthread"]
    # threads: /proc/PID/task says which; kd-ps --pid takes the whole group
    tids = sorted(p for p in truth.tasks if truth.tasks[p][0] == "kd-threads")
    assert len(tids) == EXTRA_THREADS + 1 and tids[0] == truth.threaded
    group = kd_records(driver, f"kd-ps --pid {truth.threaded}")
    assert sorted(t["pid"] for t in group) == tids and {t["tgid"] for t in group} == {truth.threaded}
    # kd-child's real parent is a kd-threads thread, not its leader: its ppid is
    # that thread's tgid, as /proc/PID/stat shows (checked above), not its pid.
    parent = int(driver.run(f"p $kd_task({truth.child})->real_parent->pid").split("=")[1])
    assert parent != truth.threaded and parent in tids and kd[truth.child]["ppid"] == truth.threaded


def test_kd_ps_filters(live):
    driver, truth, _, _ = live
    sleepers = kd_records(driver, "kd-ps --comm sleep")
    assert sorted(t["pid"] for t in sleepers) == sorted(truth.sleepers)
    assert [t["pid"] for t in kd_records(driver, "kd-ps --pid 1")] == [1]
    assert all(t["state"] == "S" for t in kd_records(driver, "kd-ps --state S"))
    table = driver.run("kd-ps --user")
    assert table.splitlines()[0].split() == ["PID", "PPID", "ST", "CPU", "TASK", "COMM"]
    assert "[kthreadd]" not in table and " init" in table


def test_kd_dmesg_agrees_with_dmesg(live):
    driver, truth, _, _ = live
    ours = dmesg_lines(kd_records(driver, "kd-dmesg"))
    assert len(truth.dmesg) > 100
    assert ours[:len(truth.dmesg)] == truth.dmesg
    tail = driver.run("kd-dmesg --tail 3").splitlines()
    assert tail and tail[-1] in "\n".join(ours[-6:])


def test_kd_lsmod_agrees_with_proc_modules(live):
    """Name, size (every region of the module), use count, holders (in
    /proc/modules' order), address and state, as /proc/modules prints them."""
    driver, truth, _, _ = live
    listing = kd_records(driver, "kd-lsmod")
    ours = {m["name"]: m for m in listing}
    assert len(truth.modules) >= 5  # the shared guest: virtio_blk, fw_cfg, pvpanic, pvpanic_mmio, pvpanic_pci
    assert [m["name"] for m in listing] == [m[0] for m in truth.modules]  # the list's order, newest first
    # pvpanic is used by pvpanic_pci and pvpanic_mmio: the holders check cannot pass empty
    assert any(m[3] != "-" for m in truth.modules)
    table = {line.split()[0]: line.split() for line in driver.run("kd-lsmod").splitlines()[1:]}
    for name, size, refs, deps, state, addr, *_ in truth.modules:
        m = ours[name]
        holders = [d for d in deps.split(",") if d and d != "-"]
        assert (m["size"], m["refcount"], m["used_by"] + ["[permanent]"] * m["permanent"], m["address"],
                m["state"]) == (int(size), int(refs), holders, int(addr, 16), state.lower()), name
        assert table[name][1:4] == [size, refs, deps.rstrip(",")], name  # the table's BY column too


def test_version_cmdline_cpus(live):
    driver, truth, _, _ = live
    assert driver.run("kd-version") == truth.version
    assert driver.run("kd-cmdline") == truth.cmdline
    rows = [line.split() for line in driver.run("kd-cpus").splitlines()[1:]]
    assert len(rows) == truth.ncpus >= 2


def test_per_cpu_data_with_kaslr(live):
    driver, truth, _, _ = live
    for cpu in range(truth.ncpus):
        assert driver.run(f'p $kd_per_cpu("runqueues", {cpu}).cpu').endswith(f"= {cpu}")
        assert driver.run(f"p $kd_per_cpu(runqueues, {cpu}).cpu").endswith(f"= {cpu}")
        # The task each runqueue says is current is what kd-cpus / $kd_current see.
        curr = driver.run(f'p/x (unsigned long)$kd_per_cpu("runqueues", {cpu}).curr')
        assert driver.run(f"p/x (unsigned long)$kd_current({cpu})").split("=")[1] == curr.split("=")[1]


def test_functions(live):
    driver, _, _, _ = live
    assert driver.run("p $kd_task(1)->comm").endswith('"init", \'\\000\' <repeats 11 times>')
    assert driver.run('p $container_of(&init_task.tasks, "struct task_struct", "tasks") == &init_task') \
        .endswith("= 1")


def test_kd_bt_of_a_sleeping_task_matches_proc_stack(live):
    driver, truth, _, _ = live
    bt = driver.run("kd-bt 1")
    funcs = re.findall(r"^#\d+\s+0x[0-9a-f]+ (\S+?)\+", bt, re.M)
    assert truth.init_stack, "the guest shows no /proc/1/stack"
    # gdb names an address inside entry_SYSCALL_64 by that sized symbol where
    # kallsyms takes the inner label entry_SYSCALL_64_after_hwframe.
    missing = [f for f in truth.init_stack if f not in funcs and not any(f.startswith(g + "_") for g in funcs)]
    assert not missing, bt
    # The vCPU's registers are back: the selected frame is where the CPU stopped.
    assert "kd-bt" not in driver.run("frame")


def test_kd_task(live):
    driver, _, _, _ = live
    out = driver.run("kd-task 1")
    assert re.search(r"^comm\s+init$", out, re.M) and re.search(r"^pid\s+1 ", out, re.M)


def test_errors_are_one_line(live):
    driver, _, _, _ = live
    for cmd, msg in (("kd-bt 99999", "no task with pid 99999"), ("kd-ps --bogus", "unrecognized arguments"),
                     ("kd-task", "required"), ("kd-break sched x", "usage: kd-break sched PID")):
        out = driver.run(cmd)
        assert msg in out and "Traceback" not in out and len(out.splitlines()) == 1, (cmd, out)


def test_records_over_mi_are_what_the_console_shows(live):
    """The MI twins (-kd-ps, ...) return the records the console commands
    print with --json; a gdb error comes as GdbCommandError with gdb's line."""
    driver, truth, _, _ = live
    for cmd in ("kd-ps", "kd-lsmod", "kd-dmesg --tail 20", "kd-bt 1"):
        records = kd_records(driver, cmd)
        assert records and json.loads(driver.run(f"{cmd} --json")) == records, cmd
    assert driver.records("kd-version") == truth.version
    assert driver.records("kd-cmdline") == truth.cmdline
    assert [int(c["cpu"]) for c in driver.records("kd-cpus")] == list(range(truth.ncpus))
    assert driver.records("kd-task", 1)["task"]["comm"] == "init"
    with pytest.raises(GdbCommandError) as e:
        driver.records("kd-bt", 99999)
    assert e.value.gdb_message == "no task with pid 99999"


def test_module_symbols_sit_where_kallsyms_says(live):
    """Functions and variables of every loaded module, whichever section holds
    them (.text, .exit.text, .data, ...), where /proc/kallsyms has them."""
    driver, truth, _, kernel = live
    if kernel.module_debug_dir is None:
        pytest.skip("no module debug files for this kernel")
    assert len(truth.module_symbols) >= 10
    sections = {section_of(truth, a) for a in truth.module_symbols.values()}
    assert {".text", ".exit.text", ".data"} <= sections, sections
    wrong = {name: (addr, driver.run(f"p/x (unsigned long)&{name}")) for name, addr in truth.module_symbols.items()
             if not driver.run(f"p/x (unsigned long)&{name}").endswith(f"= {addr:#x}")}
    assert wrong == {}


def test_kd_symbols_follows_rmmod_and_insmod(live, shared_guest):
    """Module symbols follow the guest: rmmod + insmod while gdb lets it run
    (internal breakpoints on free_module / do_init_module), then Ctrl-C."""
    driver, _, _, kernel = live
    if kernel.module_debug_dir is None:
        pytest.skip("no module debug files for this kernel")
    before = {m["name"]: m["address"] for m in kd_records(driver, "kd-lsmod")}
    assert "pvpanic_pci" in before
    # Typed now, run by the guest's shell once gdb lets it go on.
    shared_guest.send("rmmod pvpanic_pci; insmod /lib/modules/$(grep -o '^[^ ]*pvpanic.pci[^ ]*' /etc/kdebug/modules); "
                      "grep -w pvpanic_pci_probe /proc/kallsyms; echo __KD_FOLLOW_DONE__")
    driver.cont()
    i, m = shared_guest.expect([re.compile(r"(\w+) t pvpanic_pci_probe\s+\[pvpanic_pci\]\s+__KD_FOLLOW_DONE__")],
                               timeout=120)
    assert i == 0, shared_guest.transcript[-2000:]
    probe = int(m.group(1), 16)
    driver.interrupt()
    # gdb reported the reload while the guest ran (unload first, then load at the new place).
    assert "kd-symbols: pvpanic_pci at 0x" in driver.output_since(), driver.output_since()
    after = {m["name"]: m["address"] for m in kd_records(driver, "kd-lsmod")}
    assert set(after) == set(before)
    assert driver.run("p/x (unsigned long)&pvpanic_pci_probe").endswith(f"= {probe:#x}")


def test_syscall_preset_hits_and_reports(live, shared_guest):
    driver, _, _, _ = live
    out = driver.run("kd-break syscall uname")
    m = re.search(r"kd-break: #(\d+) break __x64_sys_newuname", out)  # x86-64's uname(2)
    assert m, out
    stopped = True
    try:
        shared_guest.send("uname -r")
        driver.cont()
        stopped = False
        hit = driver.wait_output(r"kd-break: __x64_sys_newuname hit on CPU \d+, task (\d+) \((\w+)\)", timeout=120)
        driver.wait_stopped(60)
        stopped = True
        pid, comm = int(hit.group(1)), hit.group(2)
        assert comm in ("uname", "sh")  # busybox may run the applet inside the shell
        driver.wait_output(r"#0\s+0x[0-9a-f]+ __x64_sys_newuname\+", timeout=30)
        driver.wait_output(r"last log lines:", timeout=30)
        assert [t["comm"] for t in kd_records(driver, f"kd-ps --pid {pid}")] == [comm]
    finally:
        if not stopped:
            driver.interrupt()
        driver.run(f"delete {m.group(1)}")
