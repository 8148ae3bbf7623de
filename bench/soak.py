#!/usr/bin/env python3
"""The soak (issue 22): captures and runs back to back, checking after each
that nothing is left behind and that kdebug's own memory stays flat.

1. ``--captures N`` captures in this one process through the Python API
   (kdebug.api.capture), alternating kdump and QEMU dumps and warm and cold
   starts; each capture's directory is checked (vmcore whole and 0600) and
   removed.
2. ``--runs N`` runs in this process (kdebug.api.boot, a command, close),
   then the same number of ``kdebug run`` commands, alternating ``--cold``
   and warm, each a process of its own as a user runs it.

After every iteration: no QEMU process left (ours or any kdebug session's),
no session directory, no new entry in the temporary directory, and this
process's file descriptors (sockets among them), threads and children as
after the first iteration. Prints RSS first/max/last and the leak counts;
exits 1 when something leaked. The soak's kdebug runs with a runtime and a
temporary directory of its own (KDEBUG_RUNTIME_DIR, TMPDIR), so another
kdebug on the machine is not taken for a leak.

    .venv/bin/python bench/soak.py [--captures 50] [--runs 50] [--release 6.1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kdebug.api as kd  # noqa: E402
from kdebug.session import sessions_root  # noqa: E402
from tests.conftest import qemu_pids_for  # noqa: E402

KDEBUG = [sys.executable, "-m", "kdebug.cli.main"]


@dataclass
class Sample:
    rss_kb: int
    fds: int
    sockets: int
    threads: int
    children: int


def sample() -> Sample:
    status = Path("/proc/self/status").read_text()
    rss = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS:")))
    threads = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("Threads:")))
    fds = list(Path("/proc/self/fd").iterdir())
    sockets = sum(1 for f in fds if _link(f).startswith("socket:"))
    return Sample(rss, len(fds), sockets, threads, _children())  # QEMU among them


def _link(p: Path) -> str:
    try:
        return os.readlink(p)
    except OSError:
        return ""


def _children() -> int:
    me = str(os.getpid())
    n = 0
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "stat").read_text().rsplit(")", 1)[1].split()[1] == me:
                    n += 1
            except (OSError, IndexError):
                pass
    return n


@dataclass
class Soak:
    private: Path  # the soak's runtime and temporary directories live here
    samples: list[Sample] = field(default_factory=list)
    #: What the process holds once a phase's first iterations made their
    #: one-time allocations (qemu.qmp's event loop and its socketpair,
    #: drgn's OpenMP thread pool): later iterations must not add to it.
    baseline: Sample | None = None
    leaks: list[str] = field(default_factory=list)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    tmp_seen: set[str] = field(default_factory=set)
    #: (when, RSS MiB): after each phase's first iterations and at its end.
    rss_marks: list[tuple[str, int]] = field(default_factory=list)

    def mark(self, when: str) -> None:
        self.rss_marks.append((when, self.samples[-1].rss_kb // 1024))

    def check(self, what: str) -> None:
        if (q := qemu_pids_for(str(self.private))):
            self.leaks.append(f"{what}: QEMU left running: {q}")
            for pid in q:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        if (s := [d.name for d in sessions_root().iterdir()]):
            self.leaks.append(f"{what}: session directories left: {s}")
        if (new := set(os.listdir(self.private / "tmp")) - self.tmp_seen):
            self.leaks.append(f"{what}: new temporary entries: {sorted(new)[:5]}")
            self.tmp_seen |= new  # report each once
        now = sample()
        if self.baseline is not None:
            for name in ("fds", "sockets", "threads", "children"):
                if getattr(now, name) > getattr(self.baseline, name):
                    self.leaks.append(f"{what}: {name} {getattr(self.baseline, name)} -> {getattr(now, name)}")
        self.samples.append(now)

    def settle(self) -> None:
        self.baseline = self.samples[-1]

    def timed(self, kind: str, t0: float) -> None:
        self.seconds.setdefault(kind, []).append(time.monotonic() - t0)


def soak_captures(s: Soak, n: int, release: str | None, work: Path) -> None:
    s.baseline = None  # until each kind has run once
    for i in range(n):
        method = "kdump" if i % 2 == 0 else "qemu"
        warm = i % 4 < 2
        out = work / f"cap{i}"
        t0 = time.monotonic()
        try:
            cap = kd.capture(release=release, method=method, out=out, warm=warm)
            vmcore = cap.directory / cap.vmcore if cap.vmcore else None
            if vmcore is None or not vmcore.is_file():
                s.leaks.append(f"capture {i} ({method}): no vmcore")
            elif stat.S_IMODE(vmcore.stat().st_mode) != 0o600:
                s.leaks.append(f"capture {i}: vmcore mode {oct(vmcore.stat().st_mode)}")
        except Exception as e:  # a failed capture is a finding, not the end of the soak
            s.leaks.append(f"capture {i} ({method}, warm={warm}) failed: {e}")
        s.timed(f"capture {method} {'warm' if warm else 'cold'}", t0)
        shutil.rmtree(out, ignore_errors=True)
        s.check(f"capture {i}")
        if i == min(n, 4) - 1:  # each of kdump/QEMU, warm/cold done once
            s.settle()
            s.mark(f"after {i + 1} captures")
        print(f"capture {i + 1}/{n}: {method}, {'warm' if warm else 'cold'}, "
              f"{s.seconds[f'capture {method} ' + ('warm' if warm else 'cold')][-1]:.1f} s, "
              f"RSS {s.samples[-1].rss_kb // 1024} MiB", flush=True)


def soak_runs(s: Soak, n: int, release: str | None) -> None:
    for i in range(n):
        t0 = time.monotonic()
        try:
            with kd.boot(release=release) as g:
                r = g.run("echo soak-$((6*7))")
                if r.output.strip() != "soak-42":
                    s.leaks.append(f"api run {i}: output {r.output!r}")
        except Exception as e:
            s.leaks.append(f"api run {i} failed: {e}")
        s.timed("api run (cold)", t0)
        s.check(f"api run {i}")
        if i == 0:
            s.settle()
            s.mark("after 1 API run")
    for i in range(n):
        cold = i % 2 == 0
        t0 = time.monotonic()
        args = [*KDEBUG, "run", *(["--release", release] if release else []), *(["--cold"] if cold else []),
                "--", "echo soak-$((6*7))"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or r.stdout.strip() != "soak-42":
            s.leaks.append(f"kdebug run {i}: exit {r.returncode}, {r.stdout[-200:]!r} {r.stderr[-300:]!r}")
        s.timed(f"kdebug run ({'cold' if cold else 'warm'})", t0)
        s.check(f"kdebug run {i}")
    s.mark(f"after {n} API and {n} CLI runs")
    print(f"runs: {n} through the API, {n} through the CLI", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--captures", type=int, default=50)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--release", default=None, help="kernel release (prefix); default: the distribution's")
    a = ap.parse_args()
    os.environ.setdefault("KDEBUG_WARM", "1")
    private = Path(tempfile.mkdtemp(prefix="kdebug-soak-"))
    for d in ("run", "tmp", "caps"):
        (private / d).mkdir(mode=0o700)
    os.environ["KDEBUG_RUNTIME_DIR"] = str(private / "run")
    os.environ["TMPDIR"] = str(private / "tmp")
    tempfile.tempdir = None  # read TMPDIR again
    s = Soak(private)
    s.check("start")
    try:
        soak_runs(s, a.runs, a.release)
        soak_captures(s, a.captures, a.release, private / "caps")
    finally:
        shutil.rmtree(private, ignore_errors=True)
    s.mark("at the end")
    rss = [x.rss_kb // 1024 for x in s.samples]
    print(f"\nRSS MiB: at start {rss[0]}, max {max(rss)}; " + ", ".join(f"{w} {m}" for w, m in s.rss_marks))
    last, base = s.samples[-1], s.baseline or s.samples[-1]
    print(f"held after the captures' first iterations -> at the end: fds {base.fds} -> {last.fds} "
          f"(sockets {base.sockets} -> {last.sockets}), threads {base.threads} -> {last.threads}, "
          f"children {last.children}")
    for kind, xs in sorted(s.seconds.items()):
        print(f"{kind}: {len(xs)} × median {sorted(xs)[len(xs) // 2]:.1f} s, max {max(xs):.1f} s")
    print(f"leaks and failures: {len(s.leaks)}")
    for line in s.leaks:
        print(f"  {line}")
    return 1 if s.leaks else 0


if __name__ == "__main__":
    sys.exit(main())
