"""kdebug bisect over a real module history: each test makes a git
repository of a few commits of one module (built against the guest
kernel's headers, as a developer builds one), records which commit brought
which bug, and checks that the bisection names that commit, that the steps
it decided agree with what each commit really does, and that the user's
tree, branch and git state are exactly as before.

Each step boots a guest: the histories are short (3-6 commits). They run
on the default kernel generation only (``one_kernel``): what is tested is
the bisection (git, verdicts, the user's tree), and a module's NULL write or
BUG() is reported alike by 6.1 and 6.12."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need, need_tool

pytestmark = pytest.mark.one_kernel

#: The module at each commit: "ok", "null" (a NULL write in init), "flaky"
#: (the same, about one insmod in two), "bug" (BUG() in init: another title).
BODY = {
    "ok": "",
    "null": "\t*(volatile int *)addr = 42; /* BAD-DEREF */\n",
    "flaky": "\tif (get_random_u32() % 2 == 0)\n\t\t*(volatile int *)addr = 42; /* BAD-DEREF */\n",
    "bug": "\tBUG_ON(version == 2);\n",
}
TEMPLATE = """// SPDX-License-Identifier: GPL-2.0
/* kdebug's bisect test module, version {version}. */
#include <linux/module.h>
#include <linux/random.h>

static unsigned long addr;
module_param(addr, ulong, 0444);
static int version = {version};

static int __init m_init(void)
{{
\tpr_info("m: version %d\\n", version);
{body}\treturn 0;
}}

static void __exit m_exit(void)
{{
}}

module_init(m_init);
module_exit(m_exit);
MODULE_DESCRIPTION("kdebug bisect test");
MODULE_LICENSE("GPL");
"""
NULL_TITLE = "BUG: kernel NULL pointer dereference in m_init"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env={"GIT_AUTHOR_NAME": "Ann Author", "GIT_AUTHOR_EMAIL": "ann@example.org",
                               "GIT_COMMITTER_NAME": "Ann Author", "GIT_COMMITTER_EMAIL": "ann@example.org",
                               "HOME": str(repo), "PATH": "/usr/bin:/bin"}).stdout.strip()


def make_history(repo: Path, kinds: list[str]) -> list[str]:
    """One commit per kind (see BODY); their hashes, oldest first."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "Kbuild").write_text("obj-m := m.o\n")
    (repo / ".gitignore").write_text("*.o\n*.ko\n*.mod*\n.*.cmd\nModule.symvers\nmodules.order\n")
    hashes = []
    for i, kind in enumerate(kinds):
        (repo / "m.c").write_text(TEMPLATE.format(version=i, body=BODY[kind]))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"m: version {i} ({kind})")
        hashes.append(git(repo, "rev-parse", "HEAD"))
    return hashes


def snapshot(repo: Path) -> dict:
    """What the user sees of their tree: HEAD, branch, status, files, bisect state."""
    return {"head": git(repo, "rev-parse", "HEAD"), "branch": git(repo, "symbolic-ref", "HEAD"),
            "status": git(repo, "status", "--porcelain"),
            "files": {p.name: p.read_bytes() for p in repo.iterdir() if p.is_file()},
            "bisecting": (repo / ".git" / "BISECT_LOG").exists()}


def kdebug(*args, cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kdebug.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@pytest.fixture
def headers(kernel):
    need((Path(f"/lib/modules/{kernel.release}/build") / "Makefile").is_file(),
         f"no kernel headers for {kernel.release}")
    need_tool("qemu-system-x86_64", "make", "gcc", "git")


def bisect(repo: Path, tmp_path: Path, good: str, bad: str, *more: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "result.json"
    r = kdebug("bisect", "--module-src", str(repo), "--good", good, "--bad", bad, "--add", "m.ko:/m.ko",
               "--run", "insmod /m.ko", "--format", "json", "-o", str(out), *more, cwd=tmp_path)
    result = json.loads(out.read_text()) if out.is_file() else {}
    return r, result


def check_steps(result: dict, hashes: list[str], truth: dict[str, str]) -> None:
    """Every tested commit's verdict is what that commit really does."""
    for row in result["evidence"]:
        kind = truth[row["commit"]["hash"]]
        want = {"ok": "good", "null": "bad", "flaky": "bad", "bug": "skip"}[kind]
        assert row["verdict"] == want, (row, kind)


def reset(repo: Path, tmp_path: Path) -> None:
    r = kdebug("bisect", "--module-src", str(repo), "--reset", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_null_dereference_found(headers, tmp_path):
    """Six commits, the fourth brings a NULL write: bisect names it; the
    user's dirty tree and branch are untouched; git bisect log works."""
    repo = tmp_path / "m"
    kinds = ["ok", "ok", "ok", "null", "null", "null"]
    hashes = make_history(repo, kinds)
    (repo / "notes.txt").write_text("uncommitted\n")
    (repo / "Kbuild").write_text("obj-m := m.o\n# a local edit\n")
    before = snapshot(repo)
    try:
        r, result = bisect(repo, tmp_path, hashes[0], "main", "--runs", "1")
        assert r.returncode == 0, r.stderr[-3000:]
        assert "Traceback" not in r.stderr
        assert "uncommitted changes" in r.stderr and "stay exactly as they are" in r.stderr
        assert result["first_bad"]["hash"] == hashes[3]
        assert result["first_bad"]["subject"] == "m: version 3 (null)"
        assert result["first_bad"]["author"] == "Ann Author <ann@example.org>"
        assert result["target"]["text"] == NULL_TITLE
        check_steps(result, hashes, dict(zip(hashes, kinds, strict=True)))
        # The console of the first bad commit's run holds the kernel's own Oops line.
        assert "BUG: kernel NULL pointer dereference, address: 0000000000000000" in result["excerpt"]
        log = subprocess.run(["git", "-C", result["worktree"], "bisect", "log"], capture_output=True, text=True)
        assert f"# first bad commit: [{hashes[3]}]" in log.stdout
        assert snapshot(repo) == before
    finally:
        reset(repo, tmp_path)
    assert snapshot(repo) == before
    assert git(repo, "worktree", "list").count("\n") == 0  # the bisection's worktree is gone


def test_flaky_bug_found_with_enough_runs(headers, tmp_path):
    """The bug crashes about one insmod in two: with --runs 8 a bad commit
    is missed with probability (1/2)^8 < 0.4 %. Three commits, the cheapest
    history that still bisects: the good end's 8 clean boots, and the two
    flaky commits each stopping at their first crash (~2 boots): ~12 boots
    in all."""
    repo = tmp_path / "m"
    kinds = ["ok", "flaky", "flaky"]
    hashes = make_history(repo, kinds)
    try:
        r, result = bisect(repo, tmp_path, hashes[0], hashes[-1], "--runs", "8")
        assert r.returncode == 0, r.stderr[-3000:]
        assert result["first_bad"]["hash"] == hashes[1]
        assert [row["label"] for row in result["evidence"]] == ["bad end", "good end", "step 1"]
        check_steps(result, hashes, dict(zip(hashes, kinds, strict=True)))
        rows = {row["commit"]["hash"]: row for row in result["evidence"]}
        assert len(rows[hashes[0]]["runs"]) == 8  # good: every run clean
        assert all(run["outcome"] == "clean" for run in rows[hashes[0]]["runs"])
        for bad in hashes[1:]:  # stopped at the first run that showed the crash
            runs = rows[bad]["runs"]
            assert runs[-1]["titles"] == [NULL_TITLE] and all(not x["titles"] for x in runs[:-1]), runs
    finally:
        reset(repo, tmp_path)


def test_unrelated_crash_skipped_not_blamed(headers, tmp_path):
    """Commit 2 hits a BUG() (another title) where commits 1 and 3 write
    through NULL: it is skipped if tested, never blamed; commit 1 is."""
    repo = tmp_path / "m"
    kinds = ["ok", "null", "bug", "null", "null"]
    hashes = make_history(repo, kinds)
    try:
        r, result = bisect(repo, tmp_path, hashes[0], hashes[-1], "--runs", "1")
        assert r.returncode == 0, r.stderr[-3000:]
        assert result["first_bad"]["hash"] == hashes[1]
        rows = {row["commit"]["hash"]: row for row in result["evidence"]}
        check_steps(result, hashes, dict(zip(hashes, kinds, strict=True)))
        if hashes[2] in rows:
            assert rows[hashes[2]]["titles"] == ["kernel BUG in m_init"]
        log = subprocess.run(["git", "-C", result["worktree"], "bisect", "log"], capture_output=True,
                             text=True).stdout
        assert (f"git bisect skip {hashes[2]}" in log) == (hashes[2] in rows)
    finally:
        reset(repo, tmp_path)


def test_bad_end_that_never_crashes(headers, tmp_path):
    """A reproducer that never crashes at the bad end: said before any
    bisecting, exit 1, nothing left behind."""
    repo = tmp_path / "m"
    make_history(repo, ["ok", "ok", "ok"])
    before = snapshot(repo)
    r, result = bisect(repo, tmp_path, "main~2", "main", "--runs", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("kdebug: error:")]
    assert errors == [f"kdebug: error: not bisected: the reproducer never showed a crash at the bad end "
                      f"{git(repo, 'rev-parse', 'main')[:12]} in 1 run"], r.stderr
    assert result["outcome"] == "bad-end-good" and [row["verdict"] for row in result["evidence"]] == ["good"]
    assert snapshot(repo) == before and git(repo, "worktree", "list").count("\n") == 0
