"""The crash taxonomy on console text recorded from real runs
(tests/fixtures/splats/<kernel>/<class>.log, written by record.py there from
captures of kdebug_splat.ko on the sanitizer tree and the Debian kernels).

The truth is not the classifier's: the report's header is matched in the
recorded text with the kernel's own format (tests/vm/splats.py), the guilty
function is the one kdebug_splat.c does the deed in, the access is what its
C code does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdebug.report.classify import signature
from kdebug.report.guilt import guilty
from kdebug.report.logtext import parse_stack, text
from kdebug.report.taxonomy import culprit_report, find_reports
from tests.conftest import FIXTURES
from tests.vm.splats import CLASSES, SCHED_ATOMIC, SplatClass, expected_title

SPLATS = FIXTURES / "splats"
RECORDED = sorted(SPLATS.glob("*/*.log"))


def _class(path: Path, console: str) -> SplatClass:
    cls = CLASSES[path.stem]
    if path.stem == "atomic-sleep" and not re.search(cls.header, console):
        return SCHED_ATOMIC  # a kernel without DEBUG_ATOMIC_SLEEP: the scheduler's own check
    return cls


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def test_fixtures_were_recorded():
    # every class on the sanitizer tree, and the Debian kernels' share of them
    targets = {p.parent.name for p in RECORDED}
    assert {"sanitizers", "6.1", "6.12"} <= targets
    assert {p.stem for p in RECORDED if p.parent.name == "sanitizers"} >= {
        "uaf", "oob", "abba", "shift", "refcount", "list", "atomic-sleep"}


@pytest.mark.parametrize("path", RECORDED, ids=_id)
def test_recorded_report_title_and_guilty_frame(path):
    console = path.read_text()
    cls = _class(path, console)
    lines = console.splitlines()
    splat = culprit_report(lines)
    assert splat is not None
    assert splat.kind == cls.kind
    assert splat.title == expected_title(cls, console)
    assert splat.guilty == cls.function
    # the title the report carries: the classifier's signature is the splat's
    assert signature("other", "", lines, []) == splat.title
    if cls.access is not None:
        op, size = cls.access
        assert splat.access is not None and (splat.access.op, splat.access.size) == (op, size)
        assert splat.access.task.startswith("insmod/")
    # the report is about the task that loaded the module
    insmod = re.search(r"\bPID: (\d+) Comm: insmod", console)
    assert insmod and splat.pid == int(insmod.group(1))


@pytest.mark.parametrize("path", [p for p in RECORDED if p.stem in ("uaf", "double-free", "kfence")], ids=_id)
def test_memory_reports_carry_their_alloc_and_free_stacks(path):
    splat = culprit_report(path.read_text().splitlines())
    # kdebug_splat.c: the object comes from kdebug_splat_kmalloc (KASAN
    # classes) or is allocated in kdebug_splat_kfence, and is freed in the
    # class's own function
    alloc = "kdebug_splat_kfence" if path.stem == "kfence" else "kdebug_splat_kmalloc"
    assert guilty(splat.stacks["alloc"]) == alloc
    assert guilty(splat.stacks["free"]) == CLASSES[path.stem].function
    assert guilty(splat.stacks["access"]) == CLASSES[path.stem].function
    assert all(f.function for st in splat.stacks.values() for f in st)


def _shift(lines: list[str]) -> list[str]:
    """The same log after another boot: other addresses, pids, CPUs, times."""
    def hexshift(m):
        return f"{int(m.group(0), 16) ^ 0x3c00000:0{len(m.group(0))}x}"
    out = [re.sub(r"(?<=PID: )\d+|(?<=pid: )\d+", "4242", ln) for ln in lines]
    out = [re.sub(r"(?<=CPU: )\d", "1", ln) for ln in out]
    out = [re.sub(r"(?<=insmod/)\d+", "4242", ln) for ln in out]
    out = [re.sub(r"^\[\s*\d+\.\d+\]", "[  123.456789]", ln) for ln in out]
    return [re.sub(r"ffff[0-9a-f]{12}", hexshift, ln) for ln in out]


@pytest.mark.parametrize("path", RECORDED, ids=_id)
def test_title_survives_another_boot(path):
    lines = path.read_text().splitlines()
    assert culprit_report(_shift(lines)).title == culprit_report(lines).title


def test_timestamps_and_dump_records_read_alike():
    """Console text (with printk timestamps) and the dump's log records (without) give one report."""
    path = SPLATS / "sanitizers" / "uaf.log"
    console = path.read_text().splitlines()
    records = [re.sub(r"^\[\s*\d+\.\d+\] ", "", ln) for ln in console]
    a, b = culprit_report(console), culprit_report(records)
    assert (a.title, a.stacks, a.access) == (b.title, b.stacks, b.access)


def test_an_earlier_report_of_another_task_is_another_incident():
    """A report about another task before the crash (a boot-time warning)
    does not name the crash; the crash's first report does."""
    other = (SPLATS / "6.12" / "refcount.log").read_text().splitlines()
    crash = (SPLATS / "6.12" / "div.log").read_text().splitlines()
    other = [re.sub(r"(?<=PID: )\d+", "1", ln) for ln in other if "Kernel panic" not in ln]
    lines = other + crash
    assert [r.kind for r in find_reports(lines)][:1] == ["refcount"]
    assert culprit_report(lines).title == "divide error in kdebug_splat_div"


def test_a_crash_without_a_report_of_its_own_gets_none():
    """sysrq-c (a real dump's log) after another task's refcount warning: the
    panic names its task (sh), no report is about it, so the crash has no
    report and the title is the panic's."""
    import json

    other = (SPLATS / "6.12" / "refcount.log").read_text().splitlines()
    other = [re.sub(r"(?<=PID: )\d+", "1", ln) for ln in other if "Kernel panic" not in ln]
    doc = json.loads((FIXTURES / "postmortem" / "sysrq.json").read_text())
    lines = other + doc["log"]
    assert culprit_report(lines) is None
    assert signature("sysrq", "sysrq triggered crash", lines, []).startswith("sysrq: crash triggered in ")


def test_one_incident_is_named_by_its_first_report():
    """Sleeping in atomic context: __might_resched's report, then the
    scheduler's "scheduling while atomic" from the same task; the first names it."""
    lines = (SPLATS / "sanitizers" / "atomic-sleep.log").read_text().splitlines()
    kinds = [r.kind for r in find_reports(lines)]
    assert kinds[:2] == ["atomic-sleep", "sched-atomic"]
    assert culprit_report(lines).kind == "atomic-sleep"


def test_stack_frames_from_text():
    lines = [" <TASK>", " kdebug_splat_uaf+0x5a/0x90 [kdebug_splat]", " ? __die+0x1f/0x70",
             " do_one_initcall.cold+0x4b/0x1b0", " </TASK>", "The buggy address"]
    frames = parse_stack(lines, 0, len(lines))
    assert [(f.function, f.offset, f.size, f.module) for f in frames] == [
        ("kdebug_splat_uaf", 0x5a, 0x90, "kdebug_splat"), ("do_one_initcall.cold", 0x4b, 0x1b0, "")]
    assert text("[   12.345678]  kdebug_splat_uaf+0x5a/0x90") == " kdebug_splat_uaf+0x5a/0x90"


def test_report_carries_the_splat_in_every_format():
    """A KASAN report's access, allocation and free stacks in the JSON (valid
    against the schema), the text, the Markdown and the HTML."""
    import dataclasses
    import json

    from kdebug.report.load import report_from_dict
    from kdebug.report.render import render
    from tests.unit.test_postmortem_render import SCHEMA, _jsonschema, sample_report

    splat = culprit_report((SPLATS / "sanitizers" / "uaf.log").read_text().splitlines())
    report = dataclasses.replace(sample_report(), splat=splat, signature=splat.title)
    doc = json.loads(render(report, "json"))
    _jsonschema().validate(doc, json.loads(SCHEMA.read_text()))
    assert doc["splat"]["access"] == {"op": "Read", "size": 4, "address": splat.access.address,
                                      "task": splat.access.task}
    assert {k: [f["function"] for f in v] for k, v in doc["splat"]["stacks"].items()} == {
        k: [f.function for f in v] for k, v in splat.stacks.items()}
    assert report_from_dict(doc) == report  # it comes back whole from JSON
    text = render(report, "text")
    md = render(report, "md")
    html = render(report, "html")
    for out in (text, md, html):
        assert splat.title in out and "Allocated" in out and "Freed" in out and "kdebug_splat_kmalloc" in out
    assert f"Read of size 4 at {splat.access.address:#x} by {splat.access.task}" in text
