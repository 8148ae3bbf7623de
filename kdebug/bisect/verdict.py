"""A bisection step's verdict from what its runs showed (pure).

A run is one boot with the reproducer; its titles are the kernel's own
reports on the console after the reproducer started, named by
:mod:`kdebug.report.taxonomy` (``BUG: kernel NULL pointer dereference in
m_work_fn``). A step is *bad* when a run shows the target, *good* when
every run ended clean, *skip* when the build failed or only other crashes
(or hangs, or boot failures) came: such a commit says nothing about the
target, and blaming it would send the bisection astray.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from kdebug.capture.panicon import find_splat
from kdebug.capture.triggers import PANIC_LINE
from kdebug.report.taxonomy import find_reports, text

GOOD, BAD, SKIP = "good", "bad", "skip"

#: How a run ended: the reproducer returned (clean or with a report the
#: kernel survived), the kernel crashed, the guest hung, or kdebug could not
#: run it (boot failure, setup command failed).
CLEAN, CRASHED, HUNG, ERROR = "clean", "crashed", "hung", "error"


@dataclass(frozen=True)
class Target:
    """What the bisection looks for: a title (exact: the bad end's first
    title) or a piece of one (``--signature TEXT``)."""

    text: str
    exact: bool = True

    def matches(self, title: str) -> bool:
        return title == self.text if self.exact else self.text in title

    def to_dict(self) -> dict:
        return {"text": self.text, "exact": self.exact}


@dataclass
class Run:
    """One boot of the reproducer."""

    outcome: str  # CLEAN, CRASHED, HUNG or ERROR
    titles: list[str] = field(default_factory=list)
    seconds: float = 0.0
    status: int | None = None  # the --run command's exit status, when it returned
    error: str = ""  # ERROR: why
    console: str = ""  # the console file this run's text was kept in

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "titles": self.titles, "seconds": round(self.seconds, 2),
                "status": self.status, "error": self.error, "console": self.console}

    @classmethod
    def from_dict(cls, d: dict) -> Run:
        return cls(d["outcome"], list(d.get("titles") or []), d.get("seconds", 0.0), d.get("status"),
                   d.get("error", ""), d.get("console", ""))


@dataclass(frozen=True)
class Verdict:
    word: str  # GOOD, BAD or SKIP
    reason: str


def console_titles(console: str) -> list[str]:
    """Every report's title on ``console`` (after the reproducer started),
    in order, each once. A panic with no report of its own is named by its
    panic line; a complaint the taxonomy does not name, by its header."""
    lines = [ln for ln in console.replace("\r", "").split("\n")]
    titles = [r.title for r in find_reports(lines)]
    if not titles:
        splat = find_splat(console)
        if splat is not None:
            titles.append(splat.line)
    if not titles:
        for ln in lines:
            m = PANIC_LINE.search(text(ln))
            if m:
                titles.append(f"kernel panic: {m.group(1).strip()}")
                break
    return list(dict.fromkeys(titles))


def shows(run: Run, target: Target) -> bool:
    return any(target.matches(t) for t in run.titles)


def decide(runs: Sequence[Run], target: Target, wanted: int) -> Verdict:
    """The verdict of a step whose runs so far are ``runs`` (``wanted``:
    ``--runs``). Callers stop running at the first run that shows the
    target; runs that could not run (ERROR) do not count."""
    n = len(runs)
    hit = next((i for i, r in enumerate(runs, 1) if shows(r, target)), None)
    if hit is not None:
        return Verdict(BAD, f"target in run {hit} of {wanted}")
    other = sorted({t for r in runs for t in r.titles})
    if other:
        return Verdict(SKIP, "only another crash: " + "; ".join(other))
    hung = sum(r.outcome == HUNG for r in runs)
    if hung:
        return Verdict(SKIP, f"{hung} run(s) hung")
    errors = [r.error for r in runs if r.outcome == ERROR]
    n -= len(errors)
    if n < wanted:
        return Verdict(SKIP, f"only {n} of {wanted} runs ran; run failed: {errors[0] if errors else '?'}")
    retried = f" ({len(errors)} more could not run: {errors[0]})" if errors else ""
    return Verdict(GOOD, f"{n} clean run{'s' if n != 1 else ''}{retried}")


def runs_wanted(runs: Sequence[Run], wanted: int) -> bool:
    """Whether another run is needed: fewer than ``wanted`` runs ran (a run
    kdebug could not run, a boot or shell timeout on a loaded host, is no
    evidence and is tried again, up to ``wanted`` times)."""
    errors = sum(r.outcome == ERROR for r in runs)
    return len(runs) - errors < wanted and errors < wanted


def build_failed(tail: str) -> Verdict:
    return Verdict(SKIP, f"build failed: {tail}" if tail else "build failed")


def first_title(runs: Sequence[Run]) -> str | None:
    """The bad end's target when none is given: the first title any run showed."""
    return next((t for r in runs for t in r.titles), None)


_SPACES = re.compile(r"\s+")


def one_line(s: str, width: int = 160) -> str:
    s = _SPACES.sub(" ", s).strip()
    return s if len(s) <= width else s[:width - 1] + "…"
