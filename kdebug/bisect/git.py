"""git for a bisection (adapter): runs :mod:`kdebug.bisect.gitargv`'s
command lines and turns a refusal into one line."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from kdebug.bisect import gitargv
from kdebug.bisect.record import Commit
from kdebug.errors import KdebugError, ToolMissing, UsageError


class BisectError(KdebugError):
    """A bisection that cannot start or go on."""

    stage = "bisect"


def run(argv: list[str], *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    if shutil.which("git") is None:
        raise ToolMissing("git not found", hint="apt-get install git")
    env = {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env})
    if check and r.returncode != 0:
        last = (r.stderr or r.stdout).strip().splitlines()
        raise BisectError(f"{' '.join(argv[3:6])} failed: {last[-1] if last else f'status {r.returncode}'}")
    return r


def toplevel(src: Path) -> Path:
    if not src.is_dir():
        raise UsageError(f"{src} is not a directory")
    r = run(gitargv.toplevel(src), check=False)
    if r.returncode != 0:
        raise UsageError(f"{src} is not a git work tree (git rev-parse: "
                         f"{(r.stderr.strip().splitlines() or ['?'])[-1]})")
    return Path(r.stdout.strip())


def resolve(src: Path, ref: str) -> str:
    r = run(gitargv.resolve(src, ref), check=False)
    if r.returncode != 0 or not r.stdout.strip():
        raise UsageError(f"unknown ref {ref!r} in {src}", hint="a commit, branch or tag `git log` shows")
    return r.stdout.strip()


def is_ancestor(src: Path, older: str, newer: str) -> bool:
    return run(gitargv.is_ancestor(src, older, newer), check=False).returncode == 0


def count_between(src: Path, good: list[str], bad: str) -> int:
    return int(run(gitargv.count_between(src, good, bad)).stdout.strip() or 0)


def describe(src: Path, commit: str) -> Commit:
    h, subject, author, date = (run(gitargv.describe(src, commit)).stdout.rstrip("\n").split("\0") + [""] * 4)[:4]
    return Commit(h, subject, author, date)


def dirty(src: Path) -> bool:
    return bool(run(gitargv.status(src)).stdout.strip())


def head(wt: Path) -> str:
    return run(gitargv.head(wt)).stdout.strip()


def bisect(wt: Path, *args: str) -> gitargv.Answer:
    argv = gitargv.bisect_start(wt, args[1], list(args[2:])) if args[0] == "start" else \
        gitargv.bisect_mark(wt, *args)
    r = run(argv, check=False)
    answer = gitargv.read_answer(r.stdout + r.stderr)
    # "We cannot bisect more!" (only skipped commits left) exits 2: an answer, not a failure.
    if r.returncode != 0 and not answer.only_skipped:
        last = (r.stderr or r.stdout).strip().splitlines()
        raise BisectError(f"git bisect {args[0]} failed: {last[-1] if last else f'status {r.returncode}'}")
    return answer


def bisect_log(wt: Path) -> str:
    return run(gitargv.bisect_log(wt), check=False).stdout
