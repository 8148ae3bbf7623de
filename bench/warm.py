#!/usr/bin/env python3
"""Warm starts (issue 21): kdebug restoring a saved guest against the same
command booting (--cold) and bare QEMU booting, interleaved in one run.

Rows (medians of N rounds; machine load hits all alike):
- bare QEMU + a minimal busybox initramfs to its first shell line (the peer,
  as in bench/boot.py);
- `kdebug run -- true`: --cold, the saving run (a fresh state directory
  each round) and warm (goal: warm <= 0.3x bare; saving <= 1.3x cold);
- `kdebug attach --batch --ex kd-ps`: --cold and warm (goal: warm <= 1.0 s);
- `kdebug crash-loop --method kdump` (no crash cross-check: --no-crash for the
  drgn row, the full report with crash): --cold and warm, to "drgn report
  ready" and to its end (goals: warm drgn report <= 3.5 s, full <= 6 s).
Warm rows restore a state saved before the rounds, in a directory of their own
(KDEBUG_WARM_DIR), so the user's cache is neither used nor touched.

    .venv/bin/python bench/warm.py [-n 3] [--release 6.12] [--no-capture]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.boot import PEER_READY, bare_argv, minimal_initramfs, time_until  # noqa: E402
from kdebug.kernel import find_kernel  # noqa: E402

KD = [sys.executable, "-m", "kdebug.cli.main"]


def timed(argv: list[str], env: dict[str, str], marker: str | None = None,
          timeout: float = 600) -> tuple[float, float | None]:
    """(seconds to the end, seconds to ``marker`` on stderr or None)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, env={**os.environ, **env})
    seen = None
    tail = []
    for line in p.stderr:
        tail = (tail + [line])[-20:]
        if marker and seen is None and marker in line:
            seen = time.monotonic() - t0
    rc = p.wait(timeout)
    if rc != 0:
        raise RuntimeError(f"{' '.join(argv[3:])} exited {rc}: {''.join(tail)[-800:]}")
    return time.monotonic() - t0, seen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=3)
    ap.add_argument("--release")
    ap.add_argument("--no-capture", action="store_true", help="skip the crash-loop rows")
    args = ap.parse_args()
    kernel = find_kernel(release=args.release)
    rel = ["--release", kernel.release]
    run_true = [*KD, "run", *rel, "--", "true"]
    attach = [*KD, "attach", *rel, "--batch", "--ex", "kd-ps"]
    loop = [*KD, "crash-loop", *rel, "--method", "kdump"]
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float | None) -> None:
        if value is not None:
            rows.setdefault(name, []).append(value)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        peer = bare_argv(kernel, minimal_initramfs(work))
        warm = {"KDEBUG_WARM_DIR": str(work / "warm")}
        # Save the warm rows' states (and build initramfs, index caches) first.
        timed(run_true, warm)
        timed(attach, warm)
        if not args.no_capture:
            timed([*loop, "--out", str(work / "save"), "--no-crash"], warm)
        for i in range(args.n):
            add("bare QEMU, minimal busybox initramfs", time_until(peer, PEER_READY, "stdout"))
            add("kdebug run -- true --cold", timed([*run_true[:-2], "--cold", "--", "true"], warm)[0])
            add("kdebug run -- true, saving (first run)",
                timed(run_true, {"KDEBUG_WARM_DIR": str(work / f"fresh{i}")})[0])
            total, ready = timed(run_true, warm, "guest ready")
            add("kdebug run -- true warm", total)
            add("  warm, to guest ready", ready)
            add("kdebug attach --batch --ex kd-ps --cold", timed([*attach, "--cold"], warm)[0])
            add("kdebug attach --batch --ex kd-ps warm", timed(attach, warm)[0])
            if not args.no_capture:
                for how, extra in (("--cold", ["--cold"]), ("warm", [])):
                    out = ["--out", str(work / f"loop-{how}-{i}")]
                    total, drgn = timed([*loop, *out, *extra, "--no-crash"], warm, "drgn report ready")
                    add(f"crash-loop --no-crash {how}, drgn report", drgn)
                    out = ["--out", str(work / f"full-{how}-{i}")]
                    add(f"crash-loop {how}, full report (drgn + crash)", timed([*loop, *out, *extra], warm)[0])
            print(f"round {i + 1}/{args.n}: " + ", ".join(f"{v[-1]:.2f}" for v in rows.values()), file=sys.stderr)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; kernel {kernel.release}, "
          f"{args.n} rounds (TCG), medians")
    bare = statistics.median(rows["bare QEMU, minimal busybox initramfs"])
    cold = statistics.median(rows["kdebug run -- true --cold"])
    for name, xs in rows.items():
        m = statistics.median(xs)
        print(f"{name:48} {m:6.2f} s  {m / bare:5.2f}x bare  {m / cold:5.2f}x cold run   "
              f"({', '.join(f'{x:.2f}' for x in xs)})")


if __name__ == "__main__":
    main()
