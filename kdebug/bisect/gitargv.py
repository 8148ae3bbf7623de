"""git's command lines for a bisection and the reading of its answers (pure).

Every git command runs as ``git -C DIR ...`` on the bisection's own
worktree (``git worktree add --detach``): the user's work tree, index and
branch are never touched, and ``git bisect log``/``replay`` work there as
after a bisection by hand (bisect state is per worktree in git).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path


def git(where: Path, *args: str) -> list[str]:
    # Messages in English: this module reads them.
    return ["git", "-C", str(where), "-c", "core.quotepath=off", *args]


def toplevel(src: Path) -> list[str]:
    return git(src, "rev-parse", "--show-toplevel")


def resolve(src: Path, ref: str) -> list[str]:
    return git(src, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")


def is_ancestor(src: Path, older: str, newer: str) -> list[str]:
    return git(src, "merge-base", "--is-ancestor", older, newer)


def count_between(src: Path, good: list[str], bad: str) -> list[str]:
    return git(src, "rev-list", "--count", bad, *(f"^{g}" for g in good))


def describe(src: Path, commit: str) -> list[str]:
    """hash, subject, author name <email> and the author date, NUL-separated."""
    return git(src, "show", "-s", "--format=%H%x00%s%x00%an <%ae>%x00%aI", commit)


def status(src: Path) -> list[str]:
    return git(src, "status", "--porcelain", "--untracked-files=no")


def worktree_add(src: Path, path: Path, commit: str) -> list[str]:
    return git(src, "worktree", "add", "--detach", "--force", str(path), commit)


def worktree_remove(src: Path, path: Path) -> list[str]:
    return git(src, "worktree", "remove", "--force", str(path))


def worktree_prune(src: Path) -> list[str]:
    return git(src, "worktree", "prune")


def bisect_start(wt: Path, bad: str, good: list[str]) -> list[str]:
    return git(wt, "bisect", "start", bad, *good, "--")


def bisect_mark(wt: Path, word: str, commit: str | None = None) -> list[str]:
    return git(wt, "bisect", word, *([commit] if commit else []))


def bisect_reset(wt: Path) -> list[str]:
    return git(wt, "bisect", "reset")


def bisect_log(wt: Path) -> list[str]:
    return git(wt, "bisect", "log")


def head(wt: Path) -> list[str]:
    return git(wt, "rev-parse", "HEAD")


@dataclass(frozen=True)
class Answer:
    """What ``git bisect start/good/bad/skip`` said."""

    first_bad: str | None = None  # "<hash> is the first bad commit"
    left: int | None = None  # "Bisecting: N revisions left to test after this"
    steps: int | None = None  # "(roughly K steps)"
    only_skipped: tuple[str, ...] = ()  # "There are only 'skip'ped commits left to test."


_FIRST = re.compile(r"^([0-9a-f]{40}) is the first bad commit", re.M)
_LEFT = re.compile(r"Bisecting: (\d+) revisions? left to test after this(?: \(roughly (\d+) steps?\))?")
_ONLY_SKIPPED = re.compile(r"There are only 'skip'ped commits left to test\.\s*\n"
                           r"The first bad commit could be any of:\s*\n((?:[0-9a-f]{40}\s*\n?)+)")


def read_answer(out: str) -> Answer:
    if m := _FIRST.search(out):
        return Answer(first_bad=m.group(1))
    if m := _ONLY_SKIPPED.search(out):
        return Answer(only_skipped=tuple(m.group(1).split()))
    if m := _LEFT.search(out):
        return Answer(left=int(m.group(1)), steps=int(m.group(2)) if m.group(2) else 0)
    return Answer()


def estimate_steps(commits: int) -> int:
    """Steps a bisection of ``commits`` candidates (good excluded, bad
    included) takes: about log2 of them."""
    return max(0, math.ceil(math.log2(commits))) if commits > 1 else 0
