"""kdebug bisect's refusals: one line each, exit 1, no guest booted, the
user's tree exactly as before (HEAD, branch, files, no bisect state)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import need_tool

ENV = {"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "A", "GIT_COMMITTER_EMAIL": "a@b"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env={**os.environ, **ENV}).stdout.strip()


@pytest.fixture
def repo(tmp_path, default_kernel):
    need_tool("git")
    r = tmp_path / "m"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    for i in range(4):
        (r / "m.c").write_text(f"int v = {i};\n")
        git(r, "add", "m.c")
        git(r, "commit", "-q", "-m", f"v{i}")
    (r / "m.c").write_text("int v = 99; /* a local edit */\n")
    return r


def snapshot(repo: Path) -> tuple:
    return (git(repo, "rev-parse", "HEAD"), git(repo, "symbolic-ref", "HEAD"), git(repo, "status", "--porcelain"),
            (repo / "m.c").read_text(), (repo / ".git" / "BISECT_LOG").exists(), git(repo, "worktree", "list"))


def kdebug(tmp_path: Path, *args: str, **kw):
    env = {**os.environ, "KDEBUG_CACHE": str(tmp_path / "cache")}
    return subprocess.Popen([sys.executable, "-m", "kdebug.cli.main", "bisect", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def refused(tmp_path: Path, *args: str) -> str:
    p = kdebug(tmp_path, *args)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("kdebug: error:")]
    assert len(errors) == 1, err
    return errors[0]


REPRO = ("--add", "m.ko:/m.ko", "--run", "insmod /m.ko")


def test_not_a_git_tree(tmp_path, default_kernel):
    (tmp_path / "plain").mkdir()
    line = refused(tmp_path, "--module-src", "plain", "--good", "v0", "--bad", "HEAD", *REPRO)
    assert "plain is not a git work tree" in line


def test_unknown_ref(repo, tmp_path):
    before = snapshot(repo)
    assert "unknown ref 'v0.9'" in refused(tmp_path, "--module-src", "m", "--good", "v0.9", "--bad", "HEAD", *REPRO)
    assert snapshot(repo) == before


def test_good_and_bad_swapped(repo, tmp_path):
    before = snapshot(repo)
    line = refused(tmp_path, "--module-src", "m", "--good", "main", "--bad", "main~3", *REPRO)
    assert "--good main and --bad main~3 are swapped" in line
    assert snapshot(repo) == before


def test_build_failing_everywhere(repo, tmp_path):
    """The bad end is built first: a build that always fails stops there,
    before any boot, with the build's own last words."""
    before = snapshot(repo)
    line = refused(tmp_path, "--module-src", "m", "--good", "main~3", "--bad", "main", *REPRO,
                   "--build", "echo 'm.c:1: error: no' >&2; false")
    assert "not bisected: the bad end" in line and "cannot be tested: build failed: m.c:1: error: no" in line
    assert snapshot(repo) == before  # nothing to resume: the worktree is gone too
    assert "no bisection" in refused(tmp_path, "--module-src", "m", "--reset")


def test_interrupted_mid_build_then_resume_and_reset(repo, tmp_path):
    """Ctrl-C while the bad end builds: one line, exit 130, the user's tree
    as before; --resume goes on (and fails the same build); --reset cleans up."""
    before = snapshot(repo)
    p = kdebug(tmp_path, "--module-src", "m", "--good", "main~3", "--bad", "main", *REPRO,
               "--build", "sleep 60", start_new_session=True)
    deadline = time.monotonic() + 60
    cache = tmp_path / "cache" / "bisect"
    while time.monotonic() < deadline and not list(cache.glob("*/builds/*/build.log")):
        time.sleep(0.2)
    assert list(cache.glob("*/builds/*/build.log")), p.communicate()[1]
    os.killpg(p.pid, signal.SIGINT)  # as the terminal's Ctrl-C: the whole foreground group
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("kdebug: interrupted; the bisection is kept"), err
    assert "Traceback" not in err
    assert snapshot(repo)[:5] == before[:5]  # the bisection's worktree is listed until --reset
    line = refused(tmp_path, "--module-src", "m", "--good", "main~3", "--bad", "main", *REPRO)
    assert "already under way" in line
    p = kdebug(tmp_path, "--module-src", "m", "--reset")
    assert p.wait(60) == 0
    assert snapshot(repo) == before


@pytest.mark.parametrize("args, words", [
    (("--src", "m", "--module-src", "m"), "--src (a kernel's history) and --module-src (a module's) cannot be"),
    (("--src", "m", "--release", "6.1"), "--src boots each commit's own build: --tree, --kernel"),
    (("--src", "m", "--config", "nope.config"), "kernel config nope.config does not exist"),
    (("--src", "m", "--config", "m/m.c", "--fragment", "debug"), "--config FILE is the whole configuration"),
    (("--module-src", "m", "--fragment", "debug", "--add", "m.ko:/m.ko"), "configure a kernel history: they need"),
    (("--src", "m", "--build", "make"), "--build is for --module-src"),
])
def test_kernel_history_refusals(repo, tmp_path, args, words):
    """--src's own refusals, before any worktree or build."""
    before = snapshot(repo)
    assert words in refused(tmp_path, *args, "--good", "main~3", "--bad", "main", "--run", "cat /proc/version")
    assert snapshot(repo) == before
    assert not list((tmp_path / "cache").glob("bisect/*/worktree"))
