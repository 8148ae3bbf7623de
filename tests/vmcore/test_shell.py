"""kdebug shell on real dumps: drgn -c against the report, gdb's kd-ps on an
ELF dump against drgn, crash in batch against the dump's release, and the
one-line errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

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


def test_gdb_refuses_a_compressed_dump_naming_the_fix(kdump_oops):
    r = kdebug("shell", str(kdump_oops.directory), "--gdb", "--batch", "--ex", "kd-ps")
    assert r.returncode == 125
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("kdebug: error")]
    assert len(lines) == 1 and "ELF" in lines[0] and "--method qemu" in lines[0], r.stderr


def test_crash_batch_reads_the_release_or_says_it_cannot(qemu_dump, kernel):
    need_tool("crash")
    from kdebug.crash import support
    from kdebug.decode.elfsyms import read_vmlinux

    facts = qemu_dump("sysrq")
    r = kdebug("shell", facts.path, "--crash", "--batch", "--ex", "sys")
    symbols = set(read_vmlinux(kernel.vmlinux, sorted(support.probe_symbols()))[1])
    crash_bin = Path(shutil.which("crash")).read_bytes()
    blocked = [c for c in support.CANNOT_OPEN
               if c.on_kernel(symbols) and not c.fixed_in(lambda m: m in crash_bin)]
    if blocked:  # this crash cannot open this kernel: the banner says so before crash starts
        assert f"cannot read this kernel: {blocked[-1].change}" in r.stderr, r.stderr
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
