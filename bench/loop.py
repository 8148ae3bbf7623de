#!/usr/bin/env python3
"""The whole loop: `kdebug crash-loop --method kdump`, warm and cold, against
the same work done as two commands (`kdebug capture` then `kdebug postmortem`:
crash starts only once the capture has ended, as crash-loop did before issue 12).

Rows, medians over interleaved rounds:
- to the drgn report and to the full report (crash-loop's own stage clock,
  read from its stderr) and the whole command;
- cold, after setup: the first crash-loop on a machine that has just run
  `scripts/setup.sh` (the README's path): a fresh KDEBUG_CACHE directory that
  holds only what setup makes in it (the kernel build trees, gdb's index
  cache, crash's indexed vmlinux copies: SETUP_MADE, linked from the real
  cache), the page cache dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`,
  as root) before it;
- cold, empty cache: the same with nothing in the cache at all (kdebug
  without its setup: no small capture kernel, no indexes), for information;
- a warm run on that empty cache right after (the second run must not pay again).

    .venv/bin/python bench/loop.py [-n 2] [--no-cold]

Goals (issue 12): drgn report <= 7 s, full <= 13 s warm; cold <= 1.5x warm.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KD = [sys.executable, "-m", "kdebug.cli.main"]
STAMP = re.compile(r"^kdebug: \[\s*([\d.]+) s\] (.*)$")
#: What scripts/setup.sh leaves in the cache (scripts/setup.d/gdb.sh).
SETUP_MADE = ("kernels", "gdb-index", "crash-vmlinux")


def cache_after_setup(path: Path) -> Path:
    """A fresh cache directory holding only setup's products (linked)."""
    from kdebug.paths import cache_dir

    path.mkdir()
    for name in SETUP_MADE:
        if (cache_dir() / name).exists():
            (path / name).symlink_to(cache_dir() / name)
    return path


def drop_caches() -> bool:
    if os.geteuid() != 0:
        return False
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")
    return True


def crash_loop(work: Path, env: dict) -> dict[str, float]:
    out = work / f"cl-{time.monotonic_ns()}"
    t0 = time.monotonic()
    r = subprocess.run([*KD, "crash-loop", "--method", "kdump", "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    whole = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"crash-loop failed: {r.stderr[-1500:]}")
    marks = {m.group(2): float(m.group(1)) for m in map(STAMP.match, r.stderr.splitlines()) if m}
    drgn = next(v for k, v in marks.items() if k.startswith("drgn report ready"))
    full = next(v for k, v in marks.items() if k.startswith("full report ready"))
    shutil.rmtree(out)
    return {"drgn report": drgn, "full report": full, "whole command": whole}


def two_commands(work: Path, env: dict) -> dict[str, float]:
    """The peer: capture, then postmortem of its directory (drgn beside crash)."""
    out = work / f"tc-{time.monotonic_ns()}"
    t0 = time.monotonic()
    subprocess.run([*KD, "capture", "--method", "kdump", "--out", str(out)], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=900)
    subprocess.run([*KD, "postmortem", str(out), "-q", "-o", str(out / "r.txt")], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=900)
    whole = time.monotonic() - t0
    shutil.rmtree(out)
    return {"whole command": whole}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2, help="rounds")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold rows")
    args = ap.parse_args()
    rows: dict[str, dict[str, list[float]]] = {}

    def add(name: str, res: dict[str, float]) -> None:
        for k, v in res.items():
            rows.setdefault(name, {}).setdefault(k, []).append(v)

    env = dict(os.environ)
    dropped = False
    with tempfile.TemporaryDirectory(prefix="kdebug-bench-loop-") as tmp:
        work = Path(tmp)
        for i in range(args.n):
            add("crash-loop, warm", crash_loop(work, env))
            add("capture + postmortem (peer), warm", two_commands(work, env))
            if not args.no_cold:
                after_setup = {**env, "KDEBUG_CACHE": str(cache_after_setup(work / f"setup-cache-{i}"))}
                dropped = drop_caches()
                add("crash-loop, cold after setup (page cache dropped)", crash_loop(work, after_setup))
                empty = {**env, "KDEBUG_CACHE": str(work / f"cache-{i}")}
                dropped = drop_caches() and dropped
                add("crash-loop, cold, empty cache (page cache dropped)", crash_loop(work, empty))
                add("crash-loop, second run on that cache", crash_loop(work, empty))
            print(f"round {i + 1}/{args.n} done", file=sys.stderr)
    warm = {k: statistics.median(v) for k, v in rows["crash-loop, warm"].items()}
    print(f"{args.n} round(s), medians; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
          + ("" if args.no_cold or dropped else "; page cache NOT dropped (not root)"))
    print(f"{'':56} {'drgn report':>12} {'full report':>12} {'whole':>8}  vs warm crash-loop")
    for name, cols in rows.items():
        med = {k: statistics.median(v) for k, v in cols.items()}
        cells = [f"{med[k]:11.1f}s" if k in med else f"{'-':>12}" for k in ("drgn report", "full report")]
        ratio = med["whole command"] / warm["whole command"]
        print(f"{name:56} {cells[0]} {cells[1]} {med['whole command']:7.1f}s  {ratio:5.2f}x")


if __name__ == "__main__":
    main()
