"""Report rendering (text, JSON against the schema, Markdown, HTML), the pure
core's imports, the CLI's bad-input handling and triage of bad dumps."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kdebug.model import FrameRecord, ModuleRecord, PrintkRecord, TaskRecord
from kdebug.report.model import (
    SCHEMA_VERSION,
    BlockedTask,
    CpuBacktrace,
    CrossCheck,
    DumpCheck,
    DumpGap,
    EngineRun,
    MemorySummary,
    PanicInfo,
    Report,
    SnapshotInfo,
    SystemInfo,
    TaskSummary,
)
from kdebug.report.render import engine_rows, render, system_rows
from tests.conftest import ROOT, need

SCHEMA = ROOT / "kdebug" / "report" / "schema" / "report-v1.json"


def sample_report() -> Report:
    sh = TaskRecord(106, 106, 1, "R", 1, "sh", 0xffff8e4e821a8000, 1740, False, True)
    dtask = TaskRecord(77, 77, 1, "D", 0, "cat <&>", 0xffff8e4e821b0000, 900)
    frames = [FrameRecord(0, 0xffffffff8b9cd0a8, "panic", 0x177, 0x2f4, "", "kernel/panic.c", 366),
              FrameRecord(1, 0xffffffff8b6a8a06, "sysrq_handle_crash", 0x16, 0x16, "", "drivers/tty/sysrq.c", 155),
              FrameRecord(2, 0xffffffffc0400230, "pvpanic_send_event", module="pvpanic", inline=True)]
    return Report(
        signature="sysrq: crash triggered in sysrq_handle_crash",
        system=SystemInfo("6.1.0-56-cloud-amd64", "#1 SMP", "3b43fad5", "x86_64", "kdebug", 2, 481052, 8.0,
                          "2026-11-26T04:56:50+00:00", "", "console=ttyS0", 0xa000000, "/tmp/vmcore", "elf",
                          "/usr/lib/debug/boot/vmlinux"),
        panic=PanicInfo("sysrq triggered crash", "sysrq", 1, sh, frames),
        other_cpus=[CpuBacktrace(0, TaskRecord(0, 0, 0, "R", 0, "swapper/0", 1, None, True, True), frames[:1])],
        tasks=TaskSummary(55, {"I": 39, "R": 1, "S": 15}, [BlockedTask(dtask, frames[:1])], [sh]),
        log_tail=[PrintkRecord(1, 8_009_180_227, 0, "Kernel panic - not syncing: sysrq triggered crash")],
        modules=[ModuleRecord("pvpanic", 16384, 3, 0xffffffffc0400000, used_by=["pvpanic_pci"])],
        memory=MemorySummary(481052, 431656, 23512, 15944, 140),
        crosscheck=[CrossCheck("panic task", "106 sh", "106 sh", "agree"),
                    CrossCheck("task count", "55", "3", "crash-limitation", "crash < 8.0.3")],
        engines=[EngineRun("drgn", True, 1.4, version="0.3.0"), EngineRun("crash", True, 15.0, version="8.0.2")],
        warnings=["<script>alert(1)</script>"])


def test_json_validates_against_schema():
    jsonschema = _jsonschema()
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = json.loads(render(sample_report(), "json"))
    jsonschema.validate(doc, schema)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["panic"]["task"]["comm"] == "sh"
    doc["panic"]["reason"] = "gremlins"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_start_of_a_warm_capture_in_json_and_text():
    """Schema 1.8: how the crashed guest started (kdebug.warm), from capture.json."""
    jsonschema = _jsonschema()
    r = sample_report()
    r.start = "warm (state 0123456789abcdef0123, saved 2026-12-07 15:28:31)"
    doc = json.loads(render(r, "json"))
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert doc["start"] == r.start and tuple(map(int, doc["schema_version"].split("."))) >= (1, 8)
    assert "guest start" in render(r, "text") and r.start in render(r, "text")
    assert "guest start" not in render(sample_report(), "text")  # not a kdebug capture: no row
    doc["start"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, json.loads(SCHEMA.read_text()))


def test_text_has_every_section_and_shared_formatters():
    text = render(sample_report(), "text")
    for title in ("System", "Panic", "CPU 0", "Tasks", "Log (tail)", "Modules", "Memory",
                  "Cross-check (drgn vs crash)", "Engines", "Warnings"):
        assert f"== {title}" in text
    assert "sysrq_handle_crash+0x16/0x16 at drivers/tty/sysrq.c:155" in text
    assert "pvpanic_send_event (inlined) [pvpanic]" in text
    assert "crash-limitation (crash < 8.0.3)" in text


def test_markdown_and_html():
    md = render(sample_report(), "md")
    assert md.startswith("# Post-mortem: sysrq: crash triggered in sysrq_handle_crash")
    assert "| panic task" in md
    page = render(sample_report(), "html")
    assert page.startswith("<!DOCTYPE html>") and 'id="reason">sysrq<' in page
    assert "<script>" not in page and "&lt;script&gt;" in page  # escaped
    assert "cat &lt;&amp;&gt;" in page
    for external in ("src=", "href=", "@import", "url("):
        assert external not in page


def test_core_imports_no_adapters():
    """The pure core loads with drgn, click, pexpect and gdb made unimportable."""
    code = ("import sys\n"
            "for m in ('drgn', 'click', 'pexpect', 'gdb', 'pygdbmi'): sys.modules[m] = None\n"
            "import kdebug.vmcore.info, kdebug.vmcore.layouts, kdebug.vmcore.filter\n"
            "import kdebug.report.model, kdebug.report.classify, kdebug.report.render\n"
            "import kdebug.crash.crosscheck, kdebug.crash.support, kdebug.report.triage, kdebug.crash.parse\n"
            "import kdebug.crash.runner, kdebug.crash.extension\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: p.write_bytes(bytes(range(256)) * 16), "is not a vmcore"),
    (lambda p: p.mkdir(), "no dump in"),
])
def test_cli_bad_input_one_line_exit_1(tmp_path, make, message):
    from kdebug.cli.main import cli

    target = tmp_path / "vmcore"
    make(target)
    res = CliRunner().invoke(cli, ["postmortem", str(target), "--no-crash"])
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output
    assert len([ln for ln in res.output.splitlines() if ln.startswith("kdebug: error")]) == 1


def test_triage_lists_bad_dumps_and_goes_on(tmp_path):
    from kdebug.postmortem.triage import TriageOptions, triage
    from kdebug.report.triage import group, triage_json
    from kdebug.vmcore.layouts import find_dumps

    (tmp_path / "vmcore-empty").write_bytes(b"")
    (tmp_path / "random.vmcore").write_bytes(bytes(range(256)) * 16)
    (tmp_path / "notes.txt").write_text("not a dump, not named like one")
    (tmp_path / "cap").mkdir()
    (tmp_path / "cap" / "vmcore").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 9)
    dumps = find_dumps(tmp_path)
    assert [str(s.vmcore.relative_to(tmp_path)) for s in dumps] == ["cap/vmcore", "random.vmcore", "vmcore-empty"]
    entries = triage(dumps, jobs=2, timeout=60, options=TriageOptions(crash=False))
    assert [e.ok for e in entries] == [False, False, False]
    errors = {e.path.rsplit("/", 1)[-1]: e.error for e in entries}
    assert "damaged ELF" in errors["vmcore"].message and "is empty" in errors["vmcore-empty"].message
    assert "is not a vmcore" in errors["random.vmcore"].message
    assert {e.stage for e in errors.values()} == {"vmcore"}  # the record, not a line of text
    assert all(g["reason"] == "failed" for g in group(entries))
    doc = json.loads(triage_json(entries))
    assert (doc["total"], doc["failed"]) == (3, 3)
    assert {d["error_stage"] for d in doc["dumps"]} == {"vmcore"}


def incomplete_report() -> Report:
    """The sample with its task walk cut short by a page the dump left out."""
    r = sample_report()
    r.tasks.complete = False
    g = DumpGap("tasks", "could not read memory from kdump: Excluded page", 0xffff8a9501372520, "slab")
    r.dump = DumpCheck(False, 55, False, "106 sh", 400, [g], "makedumpfile -d 31 left out kernel data (slab pages)",
                       "capture again with -d 23", 31)
    return r


def test_an_incomplete_dump_says_so_at_the_top_and_at_the_count_in_every_format():
    jsonschema = _jsonschema()
    r = incomplete_report()
    text = render(r, "text").splitlines()
    assert text[1] == ("INCOMPLETE DUMP: makedumpfile -d 31 left out kernel data (slab pages). "
                       "Fix: capture again with -d 23.")
    count = next(ln for ln in text if ln.startswith("55 tasks"))
    assert "incomplete" in count and "not the real count" in count and "0xffff8a9501372520" in count
    assert "\n55 tasks\n" not in render(r, "text")
    md = render(r, "md")
    assert "**INCOMPLETE DUMP: makedumpfile -d 31" in md and "55 tasks read before" in md
    page = render(r, "html")
    assert 'id="dump-notice">INCOMPLETE DUMP:' in page and "55 tasks read before the task list broke off" in page
    doc = json.loads(render(r, "json"))
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert doc["tasks"]["complete"] is False and doc["dump"]["complete"] is False
    assert doc["dump"]["gaps"][0]["page"] == "slab" and doc["dump"]["fix"] == "capture again with -d 23"
    whole = sample_report()
    assert "INCOMPLETE" not in render(whole, "text") + render(whole, "md") + render(whole, "html")


def snapshot_report() -> Report:
    r = sample_report()
    r.kind, r.signature = "snapshot", "snapshot: tasks blocked in kdebug_trigger_hung"
    r.panic = PanicInfo("", "other", None, None, [])
    r.snapshot = SnapshotInfo("2026-12-02T06:25:15+00:00", 12.5, "no panic: panic_cpu is -1")
    r.other_cpus.append(CpuBacktrace(1, TaskRecord(9, 9, 1, "R", 1, "sh", 2, 100, False, True), []))
    return r


def test_a_snapshot_is_reported_as_one():
    jsonschema = _jsonschema()
    r = snapshot_report()
    text = render(r, "text")
    assert text.startswith("kdebug post-mortem: snapshot: tasks blocked in kdebug_trigger_hung")
    assert "== Panic ==" not in text and "== Snapshot (no panic) ==" in text
    assert re.search(r"^taken +2026-12-02T06:25:15\+00:00$", text, re.M) and "no panic: panic_cpu is -1" in text
    assert "== CPU 0 running 0 swapper/0 ==" in text and "== CPU 1 running 9 sh ==" in text
    assert "D-state 77 cat <&>:" in text
    page = render(r, "html")
    assert 'id="kind">snapshot<' in page and 'id="reason"' not in page and "CPU 1 running 9 sh" in page
    assert "## Snapshot (no panic)" in render(r, "md")
    doc = json.loads(render(r, "json"))
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert doc["kind"] == "snapshot" and doc["snapshot"]["taken"] == "2026-12-02T06:25:15+00:00"
    assert json.loads(render(sample_report(), "json"))["kind"] == "panic"


def test_crash_loop_prints_the_crash_sections_from_the_record():
    from kdebug.report.render import CRASH_SECTIONS, render_text

    part = render_text(sample_report(), sections=CRASH_SECTIONS)
    assert part.startswith("== Cross-check (drgn vs crash) ==")
    assert [ln for ln in part.splitlines() if ln.startswith("== ")] == [
        "== Cross-check (drgn vs crash) ==", "== Engines ==", "== Warnings =="]
    assert render_text(sample_report()).endswith(part)  # the same words as the whole report's tail


def _jsonschema():
    """jsonschema is a dev dependency: missing, it skips here and fails in CI."""
    import importlib.util

    need(importlib.util.find_spec("jsonschema") is not None, "jsonschema is not installed (pip install -e .[dev])")
    import jsonschema

    return jsonschema


def test_report_tables_are_tabulates_without_importing_it():
    """The report's "plain" and "simple" tables (kdebug.format.ascii_table)
    equal tabulate's byte for byte, headers or none, empty cells included;
    anything else is left to tabulate."""
    import random
    import string

    from tabulate import tabulate

    from kdebug.format import ascii_table

    rnd = random.Random(11)
    alphabet = string.ascii_letters + string.digits + " -_:./()[]+"
    compared = 0
    for _ in range(3000):
        ncols = rnd.randint(1, 5)
        rows = [["".join(rnd.choice(alphabet) for _ in range(rnd.choice([0, 0, 1, 3, 9, 21])))
                 for _ in range(ncols)] for _ in range(rnd.randint(0, 6))]
        headers = [rnd.choice(["state", "count", " engine ", "x", "verdict"]) for _ in range(ncols)] \
            if rnd.random() < 0.5 else []
        fmt = rnd.choice(["plain", "simple"])
        fast = ascii_table(rows, headers, fmt)
        if fast is not None:
            compared += 1
            assert fast == tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True), (rows, headers, fmt)
    assert compared > 2500
    assert ascii_table([["ünï", "a"]], [], "plain") is None and ascii_table([[1, "a"]], [], "plain") is None
    assert ascii_table([["a\nb"]], [], "simple") is None and ascii_table([["a"]], [], "github") is None
    r = sample_report()
    text = render(r, "text")
    engines = ["engine", "version", "status", "time", "error"]
    for rows, headers, fmt in ((system_rows(r), [], "plain"), (engine_rows(r), engines, "simple")):
        assert tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True) in text
