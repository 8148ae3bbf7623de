"""kdebug bisect over a kernel's own history (--src): Debian's
linux-source-6.1 in git with three commits on top, the second of which
makes /proc/version's handler read through a NULL pointer
(tests/vm/bisect_history.py). Each commit is built with kdebug's debug
fragment in the bisection's worktree, incrementally from setup's debug tree
(the same tarball and fragment, cached by kdebug kernel build), and booted
with `cat /proc/version`.

Checked against the history's own truth (which commit brought the bug):
the first bad commit, every step's verdict, the kernel's Oops at the bad
run, that the builds were incremental (only the changed files compiled)
and that the user's repository is untouched. A second bisection, stopped
with SIGINT after its first verdict and resumed, builds nothing (every
commit is in kdebug's cache) and finds the same commit.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdebug.kbuild import DEFAULT_SOURCE, built_tree
from kdebug.paths import cache_dir
from tests.conftest import need, need_tool
from tests.vm.bisect_history import BAD, COMMITS, REPRODUCER, TITLE, git, kernel_history

pytestmark = pytest.mark.one_kernel  # boots the history's own builds, no distro kernel


@pytest.fixture(scope="module")
def history():
    need_tool("qemu-system-x86_64", "make", "gcc", "git", "tar")
    need(DEFAULT_SOURCE.is_file(), f"{DEFAULT_SOURCE} (apt-get install linux-source-6.1)")
    need(built_tree() is not None, "setup's debug kernel tree (scripts/setup.d/gdb.sh)")
    t0 = time.monotonic()
    repo, hashes, times = kernel_history(say=lambda m: print(f"history: {m}", file=sys.stderr))
    print(f"history: {time.monotonic() - t0:.1f} s {times}", file=sys.stderr)
    return repo, hashes


def kdebug(*args: str, cwd: Path, timeout: float = 5400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kdebug.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def argv(repo: Path, hashes: list[str], out: Path) -> list[str]:
    return ["bisect", "--src", str(repo), "--good", hashes[0], "--bad", hashes[-1], "--run", REPRODUCER,
            "--runs", "1", "--format", "json", "-o", str(out)]


def truth(hashes: list[str]) -> dict[str, str]:
    return {h: "bad" if i > BAD else "good" for i, h in enumerate(hashes)}  # hashes[0] is the tarball


def compiled(commit: str) -> set[str]:
    (log,) = [d / "build.log" for d in cache_dir("bisect", "kernels").glob(f"{commit}-*")]
    return set(re.findall(r"^\s+CC\s+(\S+\.o)$", log.read_text(), re.M))


def test_kernel_history_bisected(history, tmp_path):
    repo, hashes = history
    for h in hashes:  # builds left by an earlier session: this test builds them itself
        for d in cache_dir("bisect", "kernels").glob(f"{h}-*"):
            shutil.rmtree(d)
    before = (git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain"))
    out = tmp_path / "result.json"
    try:
        r = kdebug(*argv(repo, hashes, out), cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-4000:]
        print(r.stderr, file=sys.stderr)
        result = json.loads(out.read_text())
        assert result["first_bad"]["hash"] == hashes[BAD + 1]
        assert result["first_bad"]["subject"] == COMMITS[BAD][0]
        assert result["target"]["text"] == TITLE
        want = truth(hashes)
        for row in result["evidence"]:
            assert row["verdict"] == want[row["commit"]["hash"]], row
            assert row["build_seconds"] is not None, row  # built here, not taken from an earlier session
        assert "BUG: kernel NULL pointer dereference, address: 0000000000000000" in result["excerpt"]
        assert "version_proc_show" in result["excerpt"]
        # The worktree started from setup's debug tree, the tarball's commit built.
        assert f"is commit {hashes[0][:12]}'s sources built" in r.stderr
        # Incremental: each step compiled the files git changed since the
        # commit built before it (the seed's, first), and a few more (the
        # version's: a git tree's release ends in "+"), never the kernel.
        prev = hashes[0]
        for row in result["evidence"]:
            cur = row["commit"]["hash"]
            cc = compiled(cur)
            changed = {f[:-2] + ".o" for f in git(repo, "diff", "--name-only", prev, cur).split() if f.endswith(".c")}
            assert changed <= cc and len(cc) <= 20, (row["label"], changed, cc)
            prev = cur
        log = subprocess.run(["git", "-C", result["worktree"], "bisect", "log"], capture_output=True,
                             text=True).stdout
        assert f"# first bad commit: [{hashes[BAD + 1]}]" in log
        assert (git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")) == before
    finally:
        kdebug("bisect", "--src", str(repo), "--reset", cwd=tmp_path)
    assert git(repo, "worktree", "list").count("\n") == 0


def test_kernel_history_resumed_from_cached_builds(history, tmp_path):
    """Runs after the test above (or any earlier bisection of this history):
    every commit is built. Ctrl-C after the
    first verdict, then --resume: the same first bad commit, the interrupted
    step's row kept, nothing built again."""
    repo, hashes = history
    need(all(any(cache_dir("bisect", "kernels").glob(f"{h}-*/tree/vmlinux")) for h in hashes[:1] + hashes[-1:]),
         "the builds of test_kernel_history_bisected")
    out = tmp_path / "result.json"
    p = subprocess.Popen([sys.executable, "-m", "kdebug.cli.main", *argv(repo, hashes, out)], cwd=tmp_path,
                         stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stderr:
            if "-> bad" in line:  # the bad end decided
                p.send_signal(signal.SIGINT)
                break
        rest = p.stderr.read()
        assert p.wait(timeout=600) == 130, rest
        assert "kdebug bisect --resume" in rest and "Traceback" not in rest
        r = kdebug("bisect", "--src", str(repo), "--resume", "--format", "json", "-o", str(out), cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-4000:]
        result = json.loads(out.read_text())
        assert result["first_bad"]["hash"] == hashes[BAD + 1]
        rows = result["evidence"]
        assert rows[0]["label"] == "bad end" and [r["label"] for r in rows].count("bad end") == 1
        assert all(row["build_seconds"] is None for row in rows), rows  # every commit from the cache
        want = truth(hashes)
        assert all(row["verdict"] == want[row["commit"]["hash"]] for row in rows)
    finally:
        if p.poll() is None:
            p.kill()
        kdebug("bisect", "--src", str(repo), "--reset", cwd=tmp_path)
