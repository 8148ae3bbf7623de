"""kdebug bisect's pure parts: the step verdict, git's answers (read from
a real git bisection in a temporary repository), the evidence formats."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kdebug.bisect import gitargv
from kdebug.bisect.record import Commit, Result, Row, format_html, format_json, format_table, format_text
from kdebug.bisect.verdict import (
    BAD,
    CLEAN,
    CRASHED,
    ERROR,
    GOOD,
    HUNG,
    SKIP,
    Run,
    Target,
    console_titles,
    decide,
    first_title,
    runs_wanted,
)
from tests.conftest import FIXTURES, need_tool

NULL = "BUG: kernel NULL pointer dereference in m_init"
OOPS_CONSOLE = """\
[    8.767427] kdebug-run: start
[    8.804686] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    8.805973] #PF: supervisor write access in kernel mode
[    8.805973] Oops: 0002 [#1] PREEMPT SMP NOPTI
[    8.805973] CPU: 1 PID: 99 Comm: insmod Tainted: G           OE      6.1.0-57-cloud-amd64 #1  Debian 6.1.192-3
[    8.805973] RIP: 0010:m_init+0x1d/0x1000 [m]
[    8.805973] Call Trace:
[    8.805973]  <TASK>
[    8.805973]  do_one_initcall+0x59/0x220
[    8.805973]  do_init_module+0x4a/0x1f0
[    8.805973]  </TASK>
[    8.805973] Kernel panic - not syncing: Fatal exception
[    8.805973] ---[ end Kernel panic - not syncing: Fatal exception ]---
"""


def test_titles_from_a_recorded_console():
    """The titles the kernel's own report gives (recorded on 6.1): the
    faulting function from the RIP line, no address or pid."""
    assert console_titles(OOPS_CONSOLE) == [NULL]
    assert console_titles((FIXTURES / "splats" / "6.1" / "div.log").read_text()) == \
        ["divide error in kdebug_splat_div"]
    assert console_titles("[ 1.0] Kernel panic - not syncing: boom\r\n") == ["kernel panic: boom"]
    assert console_titles("[ 1.0] m: version 3\r\n") == []


def _run(*titles, outcome=None):
    return Run(outcome or (CRASHED if titles else CLEAN), list(titles))


def test_verdicts():
    target = Target(NULL)
    assert decide([_run(), _run(), _run()], target, 3).word == GOOD
    v = decide([_run(), _run(NULL)], target, 3)
    assert (v.word, v.reason) == (BAD, "target in run 2 of 3")
    v = decide([_run("kernel BUG in m_init")] * 3, target, 3)
    assert v.word == SKIP and "kernel BUG in m_init" in v.reason
    # another crash then the target (a flaky bug): the target decides
    assert decide([_run("kernel BUG in m_init"), _run(NULL)], target, 3).word == BAD
    assert decide([_run(), _run(outcome=HUNG)], target, 2).word == SKIP
    # a run kdebug could not run is no evidence: tried again, not counted
    err = Run(ERROR, error="guest shell did not answer within 30 s")
    assert decide([err], target, 1).word == SKIP
    assert decide([_run(), err, _run()], target, 2).reason == \
        "2 clean runs (1 more could not run: guest shell did not answer within 30 s)"
    assert runs_wanted([_run(), err], 2) and not runs_wanted([_run(), err, _run()], 2)
    assert not runs_wanted([err, err], 2)  # at most --runs failures


def test_target_exact_or_a_piece():
    assert Target(NULL).matches(NULL) and not Target("WARNING in foo").matches("WARNING in foobar")
    assert Target("NULL pointer", exact=False).matches(NULL)
    assert first_title([_run(), _run("a", "b")]) == "a"


def test_estimate():
    assert [gitargv.estimate_steps(n) for n in (1, 2, 3, 5, 8, 9, 1000)] == [0, 1, 2, 3, 3, 4, 10]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(gitargv.git(repo, *args), capture_output=True, text=True, check=True,
                          env={"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "A",
                               "GIT_COMMITTER_EMAIL": "a@b", "HOME": str(repo), "LC_ALL": "C",
                               "PATH": "/usr/bin:/bin"}).stdout


@pytest.fixture
def repo(tmp_path):
    need_tool("git")
    _git(tmp_path, "init", "-q")
    for i in range(8):
        (tmp_path / "f").write_text(str(i))
        _git(tmp_path, "add", "f")
        _git(tmp_path, "commit", "-q", "-m", f"c{i}")
    return tmp_path, _git(tmp_path, "rev-list", "--reverse", "HEAD").split()


def test_git_answers_read_from_a_real_bisection(repo):
    """git's own words at each step of a bisection where c5 is the first bad."""
    path, c = repo
    a = gitargv.read_answer(_git(path, *gitargv.bisect_start(path, c[7], [c[0]])[3:]))
    assert a.left is not None and a.first_bad is None
    for _ in range(8):
        head = _git(path, "rev-parse", "HEAD").strip()
        a = gitargv.read_answer(_git(path, *gitargv.bisect_mark(path, "bad" if c.index(head) >= 5 else "good")[3:]))
        if a.first_bad:
            break
    assert a.first_bad == c[5]


def test_git_answer_when_only_skipped_commits_are_left(repo):
    path, c = repo
    _git(path, "bisect", "start", c[2], c[0])
    r = subprocess.run(gitargv.bisect_mark(path, "skip"), capture_output=True, text=True, env={"LC_ALL": "C"})
    assert r.returncode == 2  # git's "We cannot bisect more!"
    a = gitargv.read_answer(r.stdout)
    assert a.only_skipped and set(a.only_skipped) == {c[1], c[2]}
    assert gitargv.read_answer("Bisecting: 3 revisions left to test after this (roughly 2 steps)\n") == \
        gitargv.Answer(left=3, steps=2)


def _result() -> Result:
    rows = [Row("bad end", Commit("a" * 40, "m: five"), 10.4, [_run(NULL)], BAD, "target in run 1 of 1"),
            Row("good end", Commit("b" * 40, "m: zero"), 8.9, [_run()], GOOD, "1 clean run"),
            Row("step 1", Commit("c" * 40, "m: two"), None, [], SKIP, "build failed: m.c:3: error")]
    return Result("found", "first bad commit", Target(NULL), rows, first_bad=Commit("a" * 40, "m: five", "Ann <a@b>"))


def test_formats():
    res = _result()
    table = format_table(res.rows).splitlines()
    assert table[0].split() == ["step", "commit", "subject", "build", "s", "runs", "titles", "seen", "verdict"]
    assert table[1].startswith("bad end") and NULL in table[1] and table[1].endswith("bad")
    assert "cached" in table[3] and "build failed: m.c:3: error" in table[3]
    text = format_text(res)
    assert text.startswith("first bad commit: " + "a" * 40) and "author:  Ann <a@b>" in text
    d = json.loads(format_json(res))
    assert d["first_bad"]["hash"] == "a" * 40 and [r["verdict"] for r in d["evidence"]] == [BAD, GOOD, SKIP]
    assert [Row.from_dict(r) for r in d["evidence"]] == res.rows
    assert "<td>bad end</td>" in format_html(res) and "&lt;a@b&gt;" in format_html(res)
    res.outcome, res.message, res.first_bad = "bad-end-good", "the reproducer never showed a crash", None
    assert format_text(res).startswith("not bisected: the reproducer never showed a crash")
