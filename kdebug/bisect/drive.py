"""The bisection (adapter): check the ends, drive ``git bisect`` in a
private worktree, test each commit git picks, keep every step in a state
file so ``--resume`` goes on after Ctrl-C or a host crash.

Layout, per source tree (keyed by its path) under kdebug's cache:
``bisect/<key>/state.json``, ``worktree/`` (``git worktree add --detach``:
the user's work tree, index and branch are never touched), ``builds/<commit>/``
(what a build made, so a commit is built once), ``runs/<commit>-<n>.log``
(each run's console).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.bisect import git, gitargv, ktree
from kdebug.bisect.build import Built, build
from kdebug.bisect.dump import dump_first_bad
from kdebug.bisect.git import BisectError
from kdebug.bisect.record import ENDS, FOUND, Result, Row
from kdebug.bisect.runs import Reproducer, excerpt, run_once
from kdebug.bisect.verdict import (
    BAD,
    GOOD,
    SKIP,
    Run,
    Target,
    Verdict,
    build_failed,
    decide,
    first_title,
    runs_wanted,
    shows,
)
from kdebug.errors import UsageError
from kdebug.kernel import Kernel, tree_kernel
from kdebug.paths import cache_dir


@dataclass
class Plan:
    source: Path  # the user's tree (any directory inside it)
    good: list[str]
    bad: str
    reproducer: Reproducer
    kernel: Kernel | None  # None: a kernel history, each commit's own build is booted
    outputs: dict[str, Path]  # guest path -> a file the build makes, relative to the tree
    headers: Path | None  # the kernel build dir for M= builds
    build_command: str | None = None
    runs: int = 3
    signature: str | None = None
    dump: bool = False  # capture one bad run of the first bad commit, with its report
    options: dict = field(default_factory=dict)  # the command's own options, kept for --resume
    kernel_config: ktree.KernelConfig | None = None  # set: the tree is a kernel's source (--src)
    jobs: int | None = None  # make -j for a kernel history


def state_dir(top: Path) -> Path:
    key = hashlib.sha256(str(top.resolve()).encode()).hexdigest()[:16]
    return cache_dir("bisect") / f"{top.name}-{key}"


def load_state(source: Path) -> dict | None:
    f = state_dir(git.toplevel(source)) / "state.json"
    return json.loads(f.read_text()) if f.is_file() else None


class _State:
    def __init__(self, d: Path, data: dict) -> None:
        self.dir, self.data = d, data

    @property
    def worktree(self) -> Path:
        return self.dir / "worktree"

    @property
    def rows(self) -> list[Row]:
        return [Row.from_dict(r) for r in self.data["rows"]]

    def add(self, row: Row) -> None:
        self.data["rows"].append(row.to_dict())
        self.save()

    def save(self) -> None:
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.dir / "state.json")


Say = Callable[[str], None]


def start(plan: Plan, say: Say) -> _State:
    """Check the range and make the worktree (nothing runs yet)."""
    top = git.toplevel(plan.source)
    d = state_dir(top)
    if (d / "state.json").exists():
        raise UsageError(f"a bisection of {top} is already under way ({d})",
                         hint="kdebug bisect --resume goes on with it, --reset drops it")
    if not plan.good:
        raise UsageError("give at least one --good REF")
    bad = git.resolve(top, plan.bad)
    good = [git.resolve(top, g) for g in plan.good]
    for ref, g in zip(plan.good, good, strict=True):
        if g == bad:
            raise UsageError(f"--good {ref} and --bad {plan.bad} are the same commit")
        if not git.is_ancestor(top, g, bad):
            if git.is_ancestor(top, bad, g):
                raise UsageError(f"--good {ref} and --bad {plan.bad} are swapped: {plan.bad} is older than {ref}",
                                 hint="--good names a commit without the crash, --bad a later one with it")
            raise UsageError(f"--good {ref} is not an ancestor of --bad {plan.bad}",
                             hint="bisect a line of history: the good commit must come before the bad one")
    if git.dirty(top):
        say(f"{top} has uncommitted changes: they are not part of the bisection (it tests commits) "
            "and stay exactly as they are")
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    st = _State(d, {"source": str(top), "good": good, "bad": bad, "target": None, "phase": "ends",
                    "options": plan.options, "rows": [], "started": time.time(),
                    "commits": git.count_between(top, good, bad)})
    git.run(gitargv.worktree_prune(top))
    git.run(gitargv.worktree_add(top, st.worktree, bad), timeout=1800)
    st.save()
    say(f"bisecting in a worktree of its own, {st.worktree}: your work tree and branch stay as they are")
    if plan.kernel_config is not None:
        config = d / "bisect.config"
        ktree.make_config(st.worktree, plan.kernel_config, config, d / "config.log")
        st.data["seed"] = ktree.seed(top, st.worktree, bad, config, say)
        st.data["config"] = str(config)  # set up: a --resume before this point cannot go on
        st.save()
    return st


def resume(source: Path, say: Say) -> _State:
    top = git.toplevel(source)
    d = state_dir(top)
    if not (d / "state.json").is_file():
        raise UsageError(f"no bisection of {top} to resume", hint="start one with --good and --bad")
    st = _State(d, json.loads((d / "state.json").read_text()))
    if not st.worktree.is_dir():
        raise BisectError(f"the bisection's worktree {st.worktree} is gone", hint="kdebug bisect --reset")
    say(f"resuming the bisection in {st.worktree} ({len(st.data['rows'])} commits tested)")
    return st


def reset(source: Path) -> str:
    """Drop the bisection of ``source``: git's bisect state, the worktree, the state."""
    top = git.toplevel(source)
    d = state_dir(top)
    if not d.exists():
        raise UsageError(f"no bisection of {top} under way")
    wt = d / "worktree"
    if wt.is_dir():
        git.run(gitargv.bisect_reset(wt), check=False)
        git.run(gitargv.worktree_remove(top, wt), check=False, timeout=1800)
    git.run(gitargv.worktree_prune(top), check=False)
    shutil.rmtree(d, ignore_errors=True)
    return f"bisection of {top} dropped ({d} removed); your work tree was never touched"


def run(plan: Plan, st: _State, say: Say) -> Result:
    """Test the ends, then bisect; the result (also when the range cannot be bisected)."""
    t0 = time.monotonic()
    wt = st.worktree
    data = st.data
    kernel = f"{plan.kernel.release} ({plan.kernel.image})" if plan.kernel is not None else \
        f"each commit's own build ({plan.kernel_config.describe() if plan.kernel_config else '?'})"
    res = Result("found", "", None, source=data["source"], worktree=str(wt), kernel=kernel)
    if data.get("target"):
        res.target = Target(**data["target"])
    tested = {r.commit.hash: r for r in st.rows}
    if data["phase"] == "ends":
        bad = data["bad"]
        wanted = Target(plan.signature, exact=False) if plan.signature else None
        row = tested.get(bad) or _test(plan, st, bad, "bad end", wanted, say)
        if row.verdict != BAD:
            return _end(res, st, "bad-end-good" if row.verdict == GOOD else "bad-end-skip",
                        _bad_end_words(plan, row), t0)
        if res.target is None:
            res.target = Target(plan.signature, exact=False) if plan.signature else \
                Target(first_title(row.runs) or "", exact=True)
            data["target"] = res.target.to_dict()
            st.save()
            say(f"target: {res.target.text}")
        for g in data["good"]:
            row = tested.get(g) or _test(plan, st, g, "good end", res.target, say)
            if row.verdict == BAD:
                return _end(res, st, "good-end-bad",
                            f"the good end {row.commit.short} shows the crash too ({row.reason})", t0)
            if row.verdict == SKIP:
                return _end(res, st, "good-end-skip", f"the good end {row.commit.short} cannot be tested: "
                            f"{row.reason}", t0)
        answer = git.bisect(wt, "start", bad, *data["good"])
        data["phase"], data["step"] = "bisecting", 0
        data["estimate"] = gitargv.estimate_steps(data["commits"])
        st.save()
    else:
        answer = gitargv.Answer()
        head = git.head(wt)
        if head in tested and tested[head].label.startswith("step"):
            answer = git.bisect(wt, tested[head].verdict)  # tested, not yet marked when it stopped
    while answer.first_bad is None and not answer.only_skipped:
        k = data["step"] + 1
        if answer.steps is not None:
            data["estimate"] = k + answer.steps
        row = _test(plan, st, git.head(wt), f"step {k}", res.target, say, of=data["estimate"])
        data["step"] = k
        st.save()
        answer = git.bisect(wt, row.verdict)
    if answer.only_skipped:
        res.candidates = [git.describe(wt, c) for c in answer.only_skipped]
        return _end(res, st, "all-skipped", f"only skipped commits are left: the first bad commit is one of "
                    f"{', '.join(c.short for c in res.candidates)}", t0)
    res.first_bad = git.describe(wt, answer.first_bad)
    rows = [r for r in st.rows if r.commit.hash == answer.first_bad]
    if rows and res.target is not None:
        bad_run = next((r for r in rows[0].runs if shows(r, res.target)), None)
        log = st.dir / "runs" / bad_run.console if bad_run else None
        if log is not None and log.is_file():
            res.excerpt = excerpt(log.read_text(errors="replace"), res.target.text)
    if plan.dump:
        built = _build(plan, st, answer.first_bad)
        res.dump = dump_first_bad(plan.reproducer, built.files, say, tree=built.tree)
    return _end(res, st, FOUND, f"first bad commit {res.first_bad.short} {res.first_bad.subject}", t0)


def _bad_end_words(plan: Plan, row: Row) -> str:
    c = row.commit.short
    if row.verdict == GOOD:
        what = f"--signature {plan.signature!r}" if plan.signature else "a crash"
        return (f"the reproducer never showed {what} at the bad end {c} in {len(row.runs)} "
                f"run{'s' if len(row.runs) != 1 else ''}")
    return f"the bad end {c} cannot be tested: {row.reason}"


def _end(res: Result, st: _State, outcome: str, message: str, t0: float) -> Result:
    res.outcome = outcome if outcome in ENDS else "all-skipped"
    res.message = message
    res.rows = st.rows
    res.seconds = time.monotonic() - t0
    st.data["result"] = {"outcome": outcome, "message": message}
    st.save()
    if outcome.startswith(("bad-end", "good-end")):
        # Nothing bisected, nothing to resume: the evidence is in the result.
        reset(Path(st.data["source"]))
        res.worktree = ""
    return res


def _test(plan: Plan, st: _State, commit: str, label: str, target: Target | None, say: Say,
          of: int | None = None) -> Row:
    """Build ``commit`` in the worktree and run the reproducer up to
    ``plan.runs`` times. With no target yet (the bad end), the first run
    with any crash decides."""
    wt = st.worktree
    if git.head(wt) != commit:
        git.run(gitargv.git(wt, "checkout", "--detach", "--force", commit), timeout=1800)
    info = git.describe(wt, commit)
    where = f"{label} of ~{of}" if of else label
    say(f"{where}: {info.short} {info.subject}")
    built = _build(plan, st, commit)
    say("  build: " + ("cached" if built.seconds is None else f"{built.seconds:.1f} s")
        + ("" if built.ok else f", FAILED: {built.tail}"))
    runs: list[Run] = []
    kernel = tree_kernel(built.tree) if built.tree is not None else plan.kernel
    if not built.ok:
        verdict = build_failed(built.tail)
    else:
        logs = st.dir / "runs"
        logs.mkdir(exist_ok=True)
        probe = target or Target("", exact=False)  # "" is in every title: any crash
        n = 0
        while runs_wanted(runs, plan.runs):
            n += 1
            log = logs / f"{commit[:12]}-{label.replace(' ', '')}-{n}.log"
            r = run_once(plan.reproducer, kernel, built.files, log)
            runs.append(r)
            shown = "; ".join(r.titles) or r.error or ("clean" if r.status in (None, 0) else f"exit {r.status}")
            say(f"  run {n}/{plan.runs}: {r.seconds:.1f} s, {r.outcome}: {shown}")
            if shows(r, probe):
                break
        verdict = decide(runs, probe, plan.runs) if target is not None else _any_crash(runs, plan.runs)
    say(f"  -> {verdict.word} ({verdict.reason})")
    row = Row(label, info, built.seconds, runs, verdict.word, verdict.reason)
    st.add(row)
    return row


def _build(plan: Plan, st: _State, commit: str) -> Built:
    """The commit checked out in the worktree, built (or found built)."""
    if plan.kernel_config is not None:
        if "config" not in st.data:
            raise BisectError("the bisection was stopped while its worktree was being set up",
                              hint="kdebug bisect --reset, then start it again")
        config = Path(st.data["config"])
        return ktree.build_commit(st.worktree, ktree.store_for(commit, config), config, jobs=plan.jobs)
    return build(st.worktree, st.dir / "builds" / commit, plan.outputs, headers=plan.headers,
                 command=plan.build_command)


def _any_crash(runs: list[Run], wanted: int) -> Verdict:
    v = decide(runs, Target("", exact=False), wanted)
    return v if v.word != BAD else Verdict(BAD, f"crashed in run {len(runs)} of {wanted}")
