"""crash beside drgn on real dumps of each kernel generation. Where crash can
open the kernel, kdebug's crash extension (kdps) lists the same tasks as
drgn's own helpers; where it cannot, the report says so in one line and crash
ran once. Whether crash can open a dump is asked of crash itself, directly
(not through kdebug), and so are its own task count and CPUs. The crash that
setup builds (scripts/setup.d/crash.sh) reads both generations: the report
runs it and cross-checks kdebug's default capture (kdump, -d 31) row by row,
and `kdebug shell --crash` answers bt, ps, mod and log as drgn does."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from kdebug.crash.runner import pick_crash
from kdebug.crash.support import PID_FLEX_ARRAY
from kdebug.paths import built_tools
from kdebug.vmcore.locate import open_dump
from tests.conftest import ROOT, need
from tests.vmcore.dumps import drgn_program


def _field(sys_text: str, name: str) -> int:
    line = next(ln for ln in sys_text.splitlines() if ln.strip().startswith(f"{name}:"))
    return int(line.split(":", 1)[1].split()[0])


def test_crash_opens_the_default_kernel(kernel, crash_sys, qemu_dump):
    """The README's main job shows crash's cross-check on the default kernel."""
    from kdebug.kernel import metapackage_release

    if kernel.release != metapackage_release():
        pytest.skip("not the default kernel")
    assert crash_sys(qemu_dump("sysrq").path) is not None


def test_crash_cross_check(qemu_dump, report_of, crash_sys):
    from drgn.helpers.linux.pid import for_each_task

    path = qemu_dump("sysrq").path
    own = crash_sys(path)
    r = report_of(path, crash=True)
    engine = next(e for e in r.engines if e.name == "crash")
    if own is None:
        pytest.skip("crash cannot open this kernel (test_crash_says_it_cannot_read_the_kernel)")
    assert engine.ok and engine.unsupported is None
    rows = {c.item: c for c in r.crosscheck}
    for item in ("release", "panic message", "panic task", "panic CPU", "backtrace (top frames)", "CPUs",
                 "modules", "log records", "task count", "tasks (pid tgid ppid state comm address)"):
        assert rows[item].verdict == "agree", (item, r.crosscheck)
    prog = drgn_program(path)
    truth = list(for_each_task(prog))
    # kdps (crash's side of the task rows) lists every task drgn's own helper does.
    assert rows["task count"].crash == str(len(truth)) == str(r.tasks.total)
    # crash's own table (sys TASKS, every CPU's idle task included) is
    # reported as its limitation exactly when it lists fewer tasks than drgn.
    listed = _field(own, "TASKS") - _field(own, "CPUS")
    assert ("crash's own task table" in rows) == (listed < len(truth)), (listed, len(truth), r.crosscheck)
    if listed < len(truth):
        row = rows["crash's own task table"]
        assert (row.verdict, row.crash) == ("crash-limitation", str(listed))
        numbers = prog.type("struct pid").member("numbers").type
        assert ("b69f0aeb0689" in row.note) == (numbers.length in (None, 0))


def test_crash_says_it_cannot_read_the_kernel(qemu_dump, report_of, crash_sys):
    path = qemu_dump("sysrq").path
    if crash_sys(path) is not None:
        pytest.skip("crash opens this kernel (test_crash_cross_check)")
    r = report_of(path, crash=True)
    engine = next(e for e in r.engines if e.name == "crash")
    assert not engine.ok and engine.unsupported == engine.error and "\n" not in engine.unsupported
    # kdebug's table knew none of this host's crashes reads it (and ran none), or the one it ran stopped
    assert re.match(r"(no crash here can read this kernel|crash \S+ cannot (read this kernel|open this dump))",
                    engine.unsupported), engine.unsupported
    assert "retried" not in engine.error and "minimal" not in engine.error  # crash ran once
    assert r.crosscheck == []
    assert [w for w in r.warnings if "crash" in w] == [engine.unsupported]
    try:
        drgn_program(path).symbol("module_load_offset")
    except LookupError:
        # crash 8.0.2 recognises a KASLR kernel by this symbol; v6.10 removed it.
        assert "module_load_offset" in engine.unsupported and "crash 8.0.6" in engine.unsupported


def _kdebug(*args):
    return subprocess.run([sys.executable, "-m", "kdebug.cli.main", *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env=dict(os.environ))


def test_cli_shows_crash_status(qemu_dump, crash_sys):
    path = qemu_dump("sysrq").path
    opens = crash_sys(path) is not None
    res = _kdebug("postmortem", path, "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    (engine,) = [e for e in doc["engines"] if e["name"] == "crash"]
    assert engine["ok"] == opens and (engine["unsupported"] is None) == opens
    assert bool(doc["crosscheck"]) == opens
    text = _kdebug("postmortem", path)
    assert text.returncode == 0, text.stderr
    crash_line = next(ln for ln in text.stdout.splitlines() if ln.lstrip().startswith("crash ")
                      and ("ok" in ln or "cannot read" in ln))
    assert ("cannot read this kernel" in crash_line) == (not opens), crash_line
    if not opens:
        assert engine["unsupported"] in text.stdout


def _crash_engine(r):
    return next(e for e in r.engines if e.name == "crash")


def test_setup_built_crash_reads_this_generation_and_the_report_runs_it(qemu_dump, report_of, crash_sys):
    built = built_tools("crash")
    need(bool(built), "setup has not built crash (scripts/setup.d/crash.sh)")
    path = qemu_dump("sysrq").path
    assert crash_sys(path, str(built[0])) is not None  # crash itself says it opens the dump
    out = subprocess.run([str(built[0]), "--version"], capture_output=True, text=True, timeout=60).stdout
    version = next(ln.strip() for ln in out.splitlines() if ln.strip())  # "crash 9.0.2"
    engine = _crash_engine(report_of(path, crash=True))
    assert engine.ok and engine.version == version, engine


#: The rows both engines must agree on for the default capture.
AGREE = ("release", "panic message", "panic task", "panic CPU", "backtrace (top frames)", "CPUs", "modules",
         "log records", "task count", "tasks (pid tgid ppid state comm address)")


def test_both_engines_cross_check_the_default_capture(kdump_oops, report_of, crash_sys):
    """The main job's dump (kdump-compressed, kdebug's default level): complete,
    at -d 31 on both generations (a makedumpfile that reads the slab page type),
    and drgn and crash agree row by row."""
    need(crash_sys(kdump_oops.directory) is not None, "no crash on this host opens this kernel")
    assert kdump_oops.dump_level == 31, kdump_oops.dump_level
    r = report_of(kdump_oops.directory, crash=True)
    assert r.dump.complete and r.dump.tasks_complete, r.dump
    assert all(e.ok for e in r.engines), r.engines
    rows = {c.item: c for c in r.crosscheck}
    for item in AGREE:
        assert rows[item].verdict == "agree", (item, r.crosscheck)
    truth = {(t.pid.value_(), t.comm.string_().decode()) for t in _drgn_tasks(kdump_oops.vmcore_path)}
    assert rows["task count"].crash == str(len(truth)) == str(r.tasks.total)


def _drgn_tasks(path):
    from drgn.helpers.linux.pid import for_each_task

    return list(for_each_task(drgn_program(path)))


#: A row of crash's ps: [>] PID PPID CPU TASK ST %MEM VSZ RSS COMM
_PS = re.compile(r"^[> ]\s*(\d+)\s+(\d+)\s+(\d+)\s+([0-9a-f]{16})\s+[A-Z]{2}\s+\S+\s+\d+\s+\d+\s+(.+)$", re.M)
#: A row of crash's mod: MODULE NAME TEXT_BASE SIZE OBJECT_FILE
_MOD = re.compile(r"^([0-9a-f]{16})\s+(\S+)\s+([0-9a-f]{16})\s+\d+\s+", re.M)


def test_crash_shell_bt_ps_mod_log_on_the_default_capture(kdump_oops, report_of, crash_sys):
    need(crash_sys(kdump_oops.directory) is not None, "no crash on this host opens this kernel")
    r = report_of(kdump_oops.directory, crash=True)
    res = _kdebug("shell", str(kdump_oops.directory), "--crash", "--batch",
                  "--ex", "bt", "--ex", "ps", "--ex", "mod", "--ex", "log")
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"kdebug: {_crash_engine(r).version} on " in res.stderr, res.stderr
    out = res.stdout
    # bt: the oopsing task, through the trigger module's function
    m = re.search(r'^PID: (\d+)\s+TASK: [0-9a-f]+\s+CPU: (\d+)\s+COMMAND: "(\S+)"', out, re.M)
    assert m and (int(m.group(1)), m.group(3)) == (r.panic.task.pid, r.panic.task.comm), out[:2000]
    assert "kdebug_trigger_oops" in out
    # mod: the modules the report lists (drgn), the trigger module among them
    assert {name for _, name, _ in _MOD.findall(out)} == {mod.name for mod in r.modules}
    assert "kdebug_trigger" in {mod.name for mod in r.modules}
    # log: the oops the panic came from, as in drgn's log
    assert "BUG: kernel NULL pointer dereference" in out
    assert r.log_tail[-1].text.strip().splitlines()[0] in out  # the newest record, as drgn read it
    # ps: every task drgn's own helper walks (pid, comm), plus the idle tasks
    ps = {(int(pid), comm.strip().strip("[]")) for pid, _, _, _, comm in _PS.findall(out)}
    truth = {(t.pid.value_(), t.comm.string_().decode()) for t in _drgn_tasks(kdump_oops.vmcore_path)}
    assert 1 <= sum(1 for t in ps if t[0] == 0) <= r.system.cpus  # idle tasks: one per CPU crash knows
    chosen = pick_crash(open_dump(kdump_oops.directory).vmlinux).binary
    if not PID_FLEX_ARRAY.fixed_in(chosen.has):
        # bookworm's 8.0.2 alone: its ps misses tasks, and the banner said so before the prompt
        assert PID_FLEX_ARRAY.message in res.stderr, res.stderr
        need(False, f"{chosen.name} misses tasks in ps ({PID_FLEX_ARRAY.change}): scripts/setup.d/crash.sh")
    assert {t for t in ps if t[0] != 0} == truth, sorted(ps ^ truth)[:20]


def test_crash_killed_mid_report_leaves_drgns_report(qemu_dump, crash_sys):
    """crash killed (SIGKILL) while the report runs it: the report comes from
    drgn with exit 0, says crash was killed (not that it cannot read the
    kernel), and crash's scratch directory is gone."""
    path = qemu_dump("sysrq").path
    need(crash_sys(path) is not None, "no crash here reads this kernel")
    before = set(Path(tempfile.gettempdir()).glob("kdebug-crash-*"))
    p = subprocess.Popen([sys.executable, "-m", "kdebug.cli.main", "postmortem", str(path), "--json"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        deadline = time.monotonic() + 120
        while killed is None and p.poll() is None and time.monotonic() < deadline:
            for pid in _crash_pids(str(path)):
                os.kill(pid, signal.SIGKILL)
                killed = pid
            time.sleep(0.02)
        out, err = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
    assert killed is not None, "crash never started"
    assert p.returncode == 0, err
    doc = json.loads(out)
    (engine,) = [e for e in doc["engines"] if e["name"] == "crash"]
    assert not engine["ok"] and engine["unsupported"] is None
    assert engine["error"] == "crash was killed by SIGKILL", engine
    assert doc["tasks"]["total"] > 0 and {row["verdict"] for row in doc["crosscheck"]} == {"unavailable"}
    assert set(Path(tempfile.gettempdir()).glob("kdebug-crash-*")) == before


def _crash_pids(vmcore: str) -> list[int]:
    """crash processes reading ``vmcore`` (argv: crash -s VMLINUX VMCORE ...)."""
    out = []
    for d in Path("/proc").iterdir():
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0") if d.name.isdigit() else []
        except OSError:
            continue
        if argv and Path(argv[0].decode(errors="replace")).name == "crash" and vmcore.encode() in argv:
            out.append(int(d.name))
    return out
