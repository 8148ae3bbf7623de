"""kdebug postmortem on real dumps, checked against what the test did (the
trigger, the guest's ps before the crash), drgn's own helpers and crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT, need, need_tool
from tests.vmcore.dumps import drgn_program

# --- sysrq-c, QEMU ELF dump -----------------------------------------------------

def test_sysrq_panic_matches_the_trigger(qemu_dump, report_of):
    facts = qemu_dump("sysrq")
    r = report_of(facts.path)
    assert (r.panic.reason, r.panic.message) == ("sysrq", "sysrq triggered crash")
    # The guest's shell wrote 'c' to /proc/sysrq-trigger itself (echo is a builtin).
    assert (r.panic.task.pid, r.panic.task.comm) == (facts.shell_pid, "sh")
    funcs = [f.function for f in r.panic.backtrace]
    assert funcs.index("panic") < funcs.index("sysrq_handle_crash") < funcs.index("write_sysrq_trigger")
    top = r.panic.backtrace[funcs.index("sysrq_handle_crash")]
    assert top.file == "drivers/tty/sysrq.c" and top.line > 0 and top.size > 0
    assert (r.system.release, r.system.cpus, r.system.vmcore_format) == (facts.release, facts.cpus, "elf")
    assert r.signature == "sysrq: crash triggered in sysrq_handle_crash"


def test_sysrq_panic_agrees_with_drgn_helpers(qemu_dump, report_of):
    from drgn.helpers.linux.panic import panic_message, panic_task

    facts = qemu_dump("sysrq")
    r = report_of(facts.path)
    prog = drgn_program(facts.path)
    assert panic_task(prog).pid.value_() == r.panic.task.pid
    assert r.panic.message in panic_message(prog).decode()
    assert r.panic.cpu == prog.crashed_thread().object.thread_info.cpu.value_()


def test_tasks_match_the_guests_ps(qemu_dump, report_of):
    from kdebug.analysis.tasks import collect_tasks

    facts = qemu_dump("sysrq")
    r = report_of(facts.path)
    tasks = collect_tasks(drgn_program(facts.path))
    assert r.tasks.total == len(tasks) == sum(r.tasks.by_state.values())
    by_pid = {t.pid: t for t in tasks}
    seen = [(pid, comm) for pid, comm in facts.ps if pid in by_pid]
    assert len(seen) >= len(facts.ps) - 2  # a kworker may come or go in between
    assert by_pid[1].comm == "init" and not by_pid[1].is_kthread
    assert by_pid[2].comm == "kthreadd" and by_pid[2].is_kthread
    assert r.tasks.top_memory and all(t.rss_kb > 0 for t in r.tasks.top_memory)


def test_json_report_validates(qemu_dump, report_of):
    jsonschema = _jsonschema()
    from kdebug.report.render import render

    schema = json.loads((ROOT / "kdebug/report/schema/report-v1.json").read_text())
    doc = json.loads(render(report_of(qemu_dump("sysrq").path, crash=True), "json"))
    jsonschema.validate(doc, schema)


def test_html_renders_in_headless_chromium(qemu_dump, report_of, tmp_path):
    need_tool("chromium")
    from kdebug.report.render import render

    page = tmp_path / "report.html"
    page.write_text(render(report_of(qemu_dump("sysrq").path), "html"))
    res = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'ud'}",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    dom = res.stdout
    assert '<span class="reason" id="reason">sysrq</span>' in dom, res.stderr[-2000:]
    bt = dom.split('id="panic-backtrace">', 1)[1].split("</pre>", 1)[0]
    assert "sysrq_handle_crash+0x" in bt and "drivers/tty/sysrq.c" in bt


# --- unknown NMI, QEMU ELF dump -------------------------------------------------------

def test_nmi_panic(qemu_dump, report_of):
    r = report_of(qemu_dump("nmi").path)
    assert (r.panic.reason, r.panic.message) == ("nmi", "NMI: Not continuing")
    assert r.panic.task.pid == 0 and r.panic.task.comm.startswith("swapper/")
    assert "unknown_nmi_error" in [f.function.split(".")[0] for f in r.panic.backtrace]
    assert r.signature == "panic: NMI: Not continuing in unknown_nmi_error"


# --- NULL-pointer oops in a module, kdump-compressed dump ------------------------------------

def test_kdump_oops(kdump_oops, report_of, crash_sys):
    r = report_of(kdump_oops.directory, crash=True)
    assert r.system.vmcore_format == "kdump"
    assert (r.panic.reason, r.panic.task.comm) == ("null-deref", "sh")
    assert r.panic.message.startswith("BUG: kernel NULL pointer dereference")
    assert r.panic.backtrace[0].function == "kdebug_trigger_oops"
    assert r.panic.backtrace[0].module == "kdebug_trigger"
    mod = next(m for m in r.modules if m.name == "kdebug_trigger")
    assert mod.out_of_tree and "O" in mod.taints and "O" in r.system.taint
    verdicts = {c.item: c.verdict for c in r.crosscheck}
    if crash_sys(kdump_oops.directory) is not None:  # crash can read this kernel
        assert verdicts["backtrace (top frames)"] == verdicts["panic task"] == "agree", r.crosscheck
    else:
        assert verdicts == {} and next(e for e in r.engines if e.name == "crash").unsupported
    assert r.signature == "BUG: kernel NULL pointer dereference in kdebug_trigger_oops"


def test_signatures_differ_across_triggers(qemu_dump, kdump_oops, report_of):
    sigs = {report_of(qemu_dump(t).path).signature for t in ("sysrq", "nmi")}
    sigs.add(report_of(kdump_oops.directory, crash=True).signature)
    assert len(sigs) == 3


# --- the CLI on real dumps: triage, wrong vmlinux, missing debug info -----------------------

def _kdebug(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "kdebug.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})


def test_triage_groups_and_survives_a_bad_dump(qemu_dump, kdump_oops, tmp_path):
    d = tmp_path / "dumps"
    d.mkdir()
    (d / "a.vmcore").symlink_to(qemu_dump("sysrq").path)
    (d / "b.vmcore").symlink_to(qemu_dump("sysrq").path)
    (d / "c.vmcore").symlink_to(qemu_dump("nmi").path)
    (d / "oops").symlink_to(kdump_oops.directory)
    with open(qemu_dump("nmi").path, "rb") as f:
        (d / "broken.vmcore").write_bytes(f.read(1 << 20))
    res = _kdebug("triage", str(d), "--json", "--no-crash", "--jobs", "2", "--timeout", "120")
    assert res.returncode == 1, res.stderr  # one dump failed
    doc = json.loads(res.stdout)
    assert (doc["total"], doc["analysed"], doc["failed"]) == (5, 4, 1)
    groups = {g["signature"]: g["count"] for g in doc["groups"]}
    assert groups["sysrq: crash triggered in sysrq_handle_crash"] == 2
    assert groups["panic: NMI: Not continuing in unknown_nmi_error"] == 1
    assert groups["BUG: kernel NULL pointer dereference in kdebug_trigger_oops"] == 1
    broken = next(x for x in doc["dumps"] if x["path"].endswith("broken.vmcore"))
    assert "truncated" in broken["error"]


def test_wrong_vmlinux_is_refused_naming_both_ids(qemu_dump):
    res = _kdebug("postmortem", qemu_dump("sysrq").path, "--vmlinux", "/bin/sh", "--no-crash")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "does not match" in line and line.count("build-id") == 2


def test_missing_debug_info_gives_the_tier0_report(qemu_dump, tmp_path):
    """Every source of debug info hidden (the machine's debug directories,
    kdebug's cache with its build trees and indexed vmlinux copies, debuginfod,
    the capture.json beside the dump): the report is tier 0, exit 0, and its
    first line names the exact -dbg package of the dump's release."""
    facts = qemu_dump("sysrq")
    (tmp_path / "dump").mkdir()
    (tmp_path / "dump" / "vmcore").symlink_to(facts.path)
    hidden = {"KDEBUG_DEBUG_DIRS": "", "KDEBUG_CACHE": str(tmp_path / "cache"), "DEBUGINFOD_URLS": ""}
    res = _kdebug("postmortem", str(tmp_path / "dump" / "vmcore"), "--no-crash", "-q", env=hidden)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    title, first = res.stdout.splitlines()[:2]  # the title, then what the report lacks
    assert title == "kdebug post-mortem: sysrq: crash triggered in sysrq_handle_crash"
    assert first.startswith(f"TIER 0, no debug info for {facts.release} (build-id "), first
    assert f"install linux-image-{facts.release}-dbg or pass --vmlinux" in first
    # a --vmlinux of another kernel is still refused, naming both build-ids
    res = _kdebug("postmortem", str(tmp_path / "dump" / "vmcore"), "--vmlinux", "/bin/sh", "--no-crash", env=hidden)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "does not match" in line and line.count("build-id") == 2


def _jsonschema():
    """jsonschema is a dev dependency: missing, it skips here and fails in CI."""
    import importlib.util

    need(importlib.util.find_spec("jsonschema") is not None, "jsonschema is not installed (pip install -e .[dev])")
    import jsonschema

    return jsonschema
