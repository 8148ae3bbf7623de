"""One vocabulary for the kernel's reports: the capture's console watcher
(kdebug.capture.panicon), the report's reason (kdebug.report.classify) and
its title (kdebug.report.taxonomy) read one table, and over every console
recorded from a real run (tests/fixtures: the crash-taxonomy splats, the
capture and boot consoles, the crash transcripts' logs, the post-mortem
fixtures' logs) they tell one story:

- the watcher fires wherever the taxonomy names a report, on the same line,
  with the same kind, and its console pattern fires exactly where it does;
- the report that explains the crash gives the reason its kind maps to
  (KINDS, the one mapping) and the title;
- the --panic-on word the watcher names is one the capture knows.

tests/vmcore/test_vocabulary.py holds the same over real captures of both kernels.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kdebug.capture import diagnose as cd
from kdebug.capture.panicon import ANY_SPLAT, SWITCHES, find_splat
from kdebug.report.classify import classify, panic_message, signature
from kdebug.report.logtext import text
from kdebug.report.model import REASONS
from kdebug.report.taxonomy import FORMATS, KINDS, culprit_report, find_reports
from tests.conftest import FIXTURES, ROOT


def _consoles() -> dict[str, list[str]]:
    """Every recorded console or kernel log under tests/fixtures, as lines."""
    out = {}
    for p in sorted(FIXTURES.rglob("*")):
        rel = str(p.relative_to(FIXTURES))
        if p.suffix == ".log" or p.name in ("console.txt", "log.txt"):
            out[rel] = p.read_text(errors="replace").splitlines()
        elif p.suffix == ".json" and p.parent.name == "postmortem":
            out[rel] = json.loads(p.read_text())["log"]
    return out


CONSOLES = _consoles()
#: The kinds only the watcher sees: no bug report, so no title (an OOM kill).
WATCHER_ONLY = {f.kind for f in FORMATS if f.parse is None}


def test_the_corpus_is_all_there():
    # every place consoles are recorded, and the reports the taxonomy must name in them
    assert {Path(k).parts[0] for k in CONSOLES} >= {"splats", "capture", "console", "crash", "postmortem"}
    named = {r.kind for lines in CONSOLES.values() for r in find_reports(lines)}
    assert named >= {"kasan", "kfence", "ubsan", "lockdep", "refcount", "list", "atomic-sleep", "sched-atomic",
                     "rcu-stall", "stack-overflow", "gpf", "divide-error", "invalid-opcode", "null-deref", "bug",
                     "hung-task"}


def test_the_table_is_whole():
    """Every kind a header can name has its reason, its switch and its label;
    every reason is in the report's vocabulary and its JSON schema."""
    die_kinds = {"gpf", "divide-error", "invalid-opcode", "stack-overflow", "double-fault", "oops"}
    kinds = {f.kind for f in FORMATS if f.kind != "die"} | die_kinds
    assert kinds == set(KINDS)
    for k in KINDS.values():
        assert k.reason in REASONS, k
        assert k.panic_on is None or k.panic_on in SWITCHES, k
        assert k.label
    schema = json.loads((ROOT / "kdebug/report/schema/report-v1.json").read_text())
    assert set(schema["properties"]["panic"]["properties"]["reason"]["enum"]) == set(REASONS)
    # every reason is reachable: a kind's, or a crash without a report's
    assert set(REASONS) == {k.reason for k in KINDS.values()} | {"sysrq", "nmi", "other"}


@pytest.mark.parametrize("name", sorted(CONSOLES))
def test_watcher_reason_and_title_agree(name):
    lines = CONSOLES[name]
    console = "\n".join(lines)
    reports = find_reports(lines)
    splat = find_splat(console)
    # the watcher fires exactly where the taxonomy names a report (or sees
    # what only it watches), and its one console pattern with it
    assert (splat is not None) == bool(reports or any(
        f.parse is None and f.header.search(text(ln)) for ln in lines for f in FORMATS))
    assert bool(ANY_SPLAT.search(console)) == (splat is not None)
    if reports:
        first = reports[0]
        assert splat.kind == first.kind, (splat, first.header)
        assert splat.line == first.header
    if splat is not None:
        assert splat.kind in KINDS
        if not KINDS[splat.kind].by_next:
            assert splat.word == KINDS[splat.kind].panic_on
        assert splat.word is None or splat.word in SWITCHES
    # the report that explains the crash gives the reason and the title
    message = panic_message(lines)
    reason = classify(message, lines)
    assert reason in REASONS
    culprit = culprit_report(lines)
    if culprit is not None:
        assert culprit.kind not in WATCHER_ONLY
        assert reason == KINDS[culprit.kind].reason, (culprit.kind, culprit.title)
        assert signature(reason, message, lines, []) == culprit.title
        assert culprit.title.startswith(culprit.headline)


def test_a_stack_overflow_is_an_oops_to_the_watcher():
    """handle_stack_overflow() prints its BUG line, then die(): the watcher
    sees it on both kernels (6.1's die() header has no "Oops: " before it)
    and names the switch that panics there."""
    for k in ("6.1", "6.12", "sanitizers"):
        s = find_splat("\n".join(CONSOLES[f"splats/{k}/stack-overflow.log"]))
        assert (s.kind, s.word) == ("stack-overflow", "oops")
        assert s.line.startswith("BUG: TASK stack guard page was hit at")


def test_list_corruption_panics_by_the_bug_it_ends_in():
    """CHECK_DATA_CORRUPTION: BUG() under CONFIG_BUG_ON_DATA_CORRUPTION (the
    recorded kernels), so panic_on_oops; a WARN() without it, so panic_on_warn."""
    lines = CONSOLES["splats/6.1/list.log"]
    s = find_splat("\n".join(lines))
    assert (s.kind, s.word, s.name) == ("list", "oops", "list corruption")
    warned = [re.sub(r"kernel BUG at (\S+)!", r"WARNING: CPU: 0 PID: 1 at \1 f+0x1/0x2", ln) for ln in lines]
    assert find_splat("\n".join(warned)).word == "warn"
    assert classify(panic_message(lines), lines) == "list-corruption"
    assert culprit_report(lines).title == "BUG: corrupted list in kdebug_splat_list"


def test_the_diagnosis_names_the_kind_as_a_person_would():
    s = find_splat("\n".join(CONSOLES["splats/sanitizers/abba.log"]))
    d = cd.splat_without_panic(s, ("oops",), 3.0)
    assert "(lockdep report)" in d.cause and "no kernel setting turns a lockdep report into a panic" in d.cause


def test_a_panic_line_opens_no_report():
    """panic()'s own line repeats the words of a report; neither the watcher
    nor the taxonomy takes it for one."""
    line = "Kernel panic - not syncing: BUG: kernel NULL pointer dereference, address: 0000000000000000"
    assert find_splat(line) is None and find_reports([line]) == []
