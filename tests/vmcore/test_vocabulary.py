"""One vocabulary on real captures of each kernel generation: the capture's
console watcher (kdebug.capture.panicon.find_splat) on the crashed kernel's
console, and the report's reason and title built from the dump's own log,
agree (tests/unit/test_vocabulary.py holds the same over the recorded
consoles). The dumps are this tier's session fixtures (conftest.py): a
module's NULL-pointer oops captured by kdump, a sysrq-c and an unknown-NMI
panic dumped by QEMU; no boot of its own.

The truth for each: what the trigger does (kdebug_trigger.ko dereferences
NULL in kdebug_trigger_oops; sysrq-c and the NMI panic without a report of
the kernel's detectors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdebug.capture.panicon import ANY_SPLAT, find_splat
from kdebug.report.model import REASONS
from kdebug.report.taxonomy import KINDS, culprit_report, find_reports


def _agree(console: str, report) -> None:
    splat = find_splat(console)
    assert bool(ANY_SPLAT.search(console)) == (splat is not None)
    assert report.panic.reason in REASONS
    if report.splat is None:
        # no kernel report explains the crash: nor does the watcher see one,
        # and the reason is none of a report kind's
        assert splat is None, splat
        assert report.panic.reason not in {k.reason for k in KINDS.values()}, report.panic.reason
        return
    # the watcher saw, as it happened, the report the dump's log names
    assert splat is not None, f"the watcher missed {report.splat.header!r}"
    assert splat.kind == report.splat.kind and splat.line == report.splat.header
    assert splat.word == KINDS[splat.kind].panic_on
    # and the console's text names it alike
    lines = console.splitlines()
    assert [r.kind for r in find_reports(lines)][:1] == [report.splat.kind]
    assert culprit_report(lines).title == report.splat.title
    # reason and title tell one story
    assert report.panic.reason == KINDS[report.splat.kind].reason
    assert report.signature == report.splat.title


def test_kdump_oops(kdump_oops, report_of):
    report = report_of(kdump_oops.directory)
    console = (kdump_oops.directory / kdump_oops.logs["main"]).read_text(errors="replace")
    _agree(console, report)
    assert (report.splat.kind, report.panic.reason) == ("null-deref", "null-deref")
    assert report.signature == "BUG: kernel NULL pointer dereference in kdebug_trigger_oops"


@pytest.mark.parametrize("trigger, reason", [("sysrq", "sysrq"), ("nmi", "nmi")])
def test_panics_without_a_report(qemu_dump, report_of, trigger, reason):
    facts = qemu_dump(trigger)
    report = report_of(facts.path)
    console = (Path(facts.path).parent / "console.log").read_text(errors="replace")
    assert report.splat is None and report.panic.reason == reason
    _agree(console, report)
