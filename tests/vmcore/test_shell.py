"""kdebug shell on real dumps: drgn -c against the report, gdb's kd- commands
on ELF, kdump-compressed (lzo, zlib) and flattened dumps against drgn, crash
in batch against the dump's release, and the one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter

from kdebug.paths import tool_candidates
from tests.conftest import ROOT, need_tool


def kdebug(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kdebug.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_drgn_c_counts_the_reports_tasks(qemu_dump, report_of):
    facts = qemu_dump("sysrq")
    r = kdebug("shell", facts.path, "-c", "print(len(kd_tasks()), len(list(for_each_task(prog))))")
    assert r.returncode == 0, r.stderr
    ours, drgns = map(int, r.stdout.split())
    assert ours == drgns == report_of(facts.path).tasks.total


def test_drgn_code_that_raises_is_the_users_traceback(qemu_dump):
    r = kdebug("shell", qemu_dump("sysrq").path, "-c", "prog['no_such_symbol_here']")
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "no_such_symbol_here" in r.stderr and "kdebug: error" not in r.stderr


def test_drgn_script_gets_its_arguments(qemu_dump, tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import sys\nprint(sys.argv[1:], prog['init_task'].comm.string_().decode())\nsys.exit(3)\n")
    r = kdebug("shell", qemu_dump("sysrq").path, "--script", str(script), "a", "b")
    assert r.returncode == 3, r.stderr
    assert r.stdout.strip() == "['a', 'b'] swapper/0"


def test_gdb_kd_ps_on_an_elf_dump_equals_drgn(qemu_dump):
    need_tool("gdb")
    facts = qemu_dump("sysrq")
    r = kdebug("shell", facts.path, "--gdb", "--batch", "--ex", "kd-ps --json", "--ex", f"kd-bt {facts.shell_pid}")
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"^\[$", r.stdout, re.M)
    end = r.stdout.index("\n]", m.start()) + 2
    gdb_tasks = {t["pid"]: (t["ppid"], t["state"], t["comm"]) for t in json.loads(r.stdout[m.start():end])}
    d = kdebug("shell", facts.path, "-c",
               "import json; print(json.dumps([(t.pid, t.ppid, t.state, t.comm) for t in kd_tasks()]))")
    assert d.returncode == 0, d.stderr
    drgn_tasks = {pid: (ppid, state, comm) for pid, ppid, state, comm in json.loads(d.stdout)}
    # drgn's walk leaves out the idle task (pid 0).
    assert {p: v for p, v in gdb_tasks.items() if p != 0} == drgn_tasks
    # The panicking shell was running on its CPU: kd-bt unwinds it from the dump's registers.
    frames = r.stdout[end:]
    assert "sysrq_handle_crash" in frames and "write_sysrq_trigger" in frames, frames[-2000:]


# What drgn says of a dump: every task, the crashed task, and an address in
# RAM whose page the dump left out (drgn's FaultError names it "Excluded page").
DRGN_FACTS = """
import json
from drgn import FaultError
from drgn.helpers.linux.mm import pfn_to_virt
excluded = None
for pfn in range(0x1000, 0x40000, 7):
    try:
        prog.read(pfn_to_virt(prog, pfn).value_(), 8)
    except FaultError as e:
        if "xcluded" in str(e):
            excluded = pfn_to_virt(prog, pfn).value_()
            break
print(json.dumps({"tasks": [(t.pid, t.ppid, t.state, t.comm) for t in kd_tasks()],
                  "crashed": prog.crashed_thread().tid, "excluded": excluded}))
"""


def drgn_facts(path) -> dict:
    d = kdebug("shell", str(path), "-c", DRGN_FACTS)
    assert d.returncode == 0, d.stderr
    return json.loads(d.stdout.splitlines()[-1])


def gdb_tasks(stdout: str) -> tuple[dict, int]:
    """kd-ps --json's tasks by pid (the idle tasks left out, as drgn's walk
    does), and where its JSON ends in ``stdout``."""
    m = re.search(r"^\[$", stdout, re.M)
    assert m, stdout[-3000:]
    end = stdout.index("\n]", m.start()) + 2
    tasks = {t["pid"]: (t["ppid"], t["state"], t["comm"]) for t in json.loads(stdout[m.start():end]) if t["pid"]}
    return tasks, end


def test_gdb_on_the_default_kdump_capture_equals_drgn(kdump_oops, report_of):
    """The issue's acceptance: kd-ps on kdebug's own capture (kdump-compressed,
    lzo, its default dump level) equals drgn's tasks and the report's counts;
    the oopsing task unwinds through the module; an excluded page is an error."""
    need_tool("gdb")
    facts = drgn_facts(kdump_oops.directory)
    assert facts["excluded"], "no excluded page found in the first GiB: was the dump filtered?"
    # (not last: gdb -batch exits 1 when its last command fails)
    r = kdebug("shell", str(kdump_oops.directory), "--gdb", "--batch", "--ex", "p $pc", "--ex", "kd-ps --json",
               "--ex", f"x/2gx {facts['excluded']:#x}", "--ex", f"kd-bt {facts['crashed']}",
               "--ex", "kd-lsmod", "--ex", "kd-dmesg")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"kdump dump, makedumpfile -d {kdump_oops.dump_level}" in r.stderr
    tasks, end = gdb_tasks(r.stdout)
    # gdb starts on the CPU that crashed, at the oopsing instruction.
    assert re.search(r"^\$1 = .* <kdebug_trigger_oops\+\d+>$", r.stdout, re.M), r.stdout[:2000]
    drgn_tasks = {pid: (ppid, state, comm) for pid, ppid, state, comm in facts["tasks"]}
    assert tasks == drgn_tasks
    report = report_of(kdump_oops.directory).tasks
    assert report.complete and report.total == len(tasks)
    assert report.by_state == dict(Counter(state for _, state, _ in tasks.values()))
    rest = r.stdout[end:]
    # kd-bt: the module's own file (kept in the capture) gives its frames, then the write syscall.
    bt = re.findall(r"#\d+\s+0x[0-9a-f]+ (\S+)", rest)  # (#0 may follow x's address: its error is on stderr)
    assert bt[0].startswith("kdebug_trigger_oops+") and bt[1].startswith("kdebug_trigger_write+"), rest[:2000]
    assert any(f.startswith("ksys_write+") for f in bt), bt
    assert re.search(r"^kdebug_trigger\s", rest, re.M), rest[:3000]
    assert "kdebug_trigger: oops" in rest and "BUG: kernel NULL pointer dereference" in rest
    # The page the dump left out is an error in gdb, never zeros.
    assert f"Cannot access memory at address {facts['excluded']:#x}" in rest + r.stderr


def test_gdb_reads_every_compression_and_flattened_dumps(kdump_oops, tmp_path):
    """kdump-tools' zlib (-c), and zstd (-z) and snappy (-p) where the
    capture's makedumpfile has them, at the capture's level; and
    makedumpfile's flattened stream (-F) of the zlib one: the same tasks as
    drgn on the capture (lzo)."""
    need_tool("gdb", "makedumpfile")
    from tests.unit.test_vmcore import make_flattened

    # The capture's own makedumpfile: an older one drops this kernel's slab pages at -d 31.
    tool = (kdump_oops.dump_filter or {}).get("tool") or "makedumpfile"
    version = subprocess.run([tool, "-v"], capture_output=True, text=True).stdout
    dumps = []
    for flag, name in (("-c", "zlib"), ("-z", "zstd"), ("-p", "snappy")):
        if name != "zlib" and not re.search(rf"^{name}\s+enabled", version, re.M):
            continue
        out = tmp_path / f"vmcore.{name}"
        mk = subprocess.run([tool, flag, "-d", str(kdump_oops.dump_level), str(kdump_oops.directory / "vmcore"),
                             str(out)], capture_output=True, text=True)
        assert mk.returncode == 0, mk.stderr
        dumps.append(out)
    flat = tmp_path / "vmcore.flat"
    flat.write_bytes(make_flattened(dumps[0].read_bytes(), chunk=1 << 20))
    want = {pid: (ppid, state, comm) for pid, ppid, state, comm in drgn_facts(kdump_oops.directory)["tasks"]}
    for dump in (*dumps, flat):
        r = kdebug("shell", str(dump), "--gdb", "--batch", "--ex", "kd-ps --json")
        assert r.returncode == 0, (dump, r.stderr[-3000:])
        assert gdb_tasks(r.stdout)[0] == want, dump


def test_crash_batch_reads_the_release_or_says_it_cannot(qemu_dump, kernel):
    need_tool("crash")
    from kdebug.crash import support
    from kdebug.decode.elfsyms import read_vmlinux

    facts = qemu_dump("sysrq")
    r = kdebug("shell", facts.path, "--crash", "--batch", "--ex", "sys")
    symbols = set(read_vmlinux(kernel.vmlinux, sorted(support.probe_symbols()))[1])
    on_kernel = [c for c in support.CANNOT_OPEN if c.on_kernel(symbols)]
    # Every crash on this host (kdebug's build, PATH's, the system's): the shell runs one that can.
    bins = [p.read_bytes() for p in tool_candidates("crash")]
    able = [b for b in bins if all(c.fixed_in(lambda m, b=b: m in b) for c in on_kernel)]
    if not able:  # no crash here can open this kernel: said once, before crash starts
        assert r.returncode != 0 and f"can read this kernel ({on_kernel[-1].change}" in r.stderr, r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert re.search(rf"RELEASE: {re.escape(facts.release)}$", r.stdout, re.M), r.stdout


def test_bad_targets_are_one_line(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello" * 100)
    for args in (["shell", str(junk)], ["shell", "--session", "no-such-guest"], ["shell"],
                 ["shell", str(junk), "--last"]):
        r = kdebug(*args)
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith(("kdebug: error", "Error:"))]
        assert r.returncode != 0 and len(errors) == 1 and "Traceback" not in r.stderr, (args, r.stderr)
    r = kdebug("shell", "--session", "no-such-guest")
    assert "kdebug sessions" in r.stderr and r.returncode == 125
