"""crash beside drgn on real dumps of each kernel generation. Where crash can
open the kernel, kdebug's crash extension (kdps) lists the same tasks as
drgn's own helpers; where it cannot, the report says so in one line and crash
ran once. Whether crash can open a dump is asked of crash itself, directly
(not through kdebug), and so are its own task count and CPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
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
    out = subprocess.run(["crash", "--version"], capture_output=True, text=True, timeout=60).stdout
    version = next(ln.strip() for ln in out.splitlines() if ln.strip())  # "crash 8.0.2"
    assert not engine.ok and engine.unsupported == engine.error
    assert engine.unsupported.startswith(f"{version} cannot ") and "\n" not in engine.unsupported
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
