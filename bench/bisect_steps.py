#!/usr/bin/env python3
"""kdebug bisect, per step, beside the same steps by hand, in the same run.

A module history of COMMITS commits (tests/vm/test_bisect.py's module: the
third commit brings a NULL write in init) is bisected with
`kdebug bisect --runs 1`; each evidence row gives the step's build and run
seconds. Then the same commits, in the same order, by hand: `git checkout`,
`make -C <headers> M=<tree> modules`, `kdebug crash-loop --method qemu
--no-crash --add m.ko:/m.ko --run 'insmod /m.ko'` (a dump and a report at
each bad step; a clean step ends when insmod returns).

kdebug's own overhead: the command's wall time less the builds and runs it
reports, per step, as a share of the mean step.

    .venv/bin/python bench/bisect_steps.py [--release 6.1] [--commits 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdebug.capture.module import headers_dir  # noqa: E402
from kdebug.kernel import find_kernel  # noqa: E402
from tests.vm.test_bisect import make_history  # noqa: E402


def kdebug(*args: str, cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "kdebug.cli.main", *args], capture_output=True, text=True, cwd=cwd)
    return time.monotonic() - t0, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release")
    ap.add_argument("--commits", type=int, default=5)
    a = ap.parse_args()
    kernel = find_kernel(release=a.release)
    headers = headers_dir(kernel)
    rel = ["--release", kernel.release]
    with tempfile.TemporaryDirectory(prefix="kdebug-bench-bisect-") as tmp:
        tmp = Path(tmp)
        kinds = ["ok", "ok"] + ["null"] * (a.commits - 2)
        hashes = make_history(tmp / "m", kinds)
        out = tmp / "r.json"
        wall, r = kdebug("bisect", "--module-src", "m", "--good", hashes[0], "--bad", hashes[-1], *rel,
                         "--add", "m.ko:/m.ko", "--run", "insmod /m.ko", "--runs", "1", "--format", "json",
                         "-o", str(out), cwd=tmp)
        if r.returncode != 0:
            sys.exit(f"kdebug bisect failed: {r.stderr[-2000:]}")
        res = json.loads(out.read_text())
        kdebug("bisect", "--module-src", "m", "--reset", cwd=tmp)
        rows = res["evidence"]
        # The same commits by hand, in a clone (the builds start cold, as kdebug's did).
        subprocess.run(["git", "clone", "-q", str(tmp / "m"), str(tmp / "hand")], check=True)
        print(f"kernel {kernel.release}; {len(rows)} steps; first bad {res['first_bad']['hash'][:12]} "
              f"(truth {hashes[2][:12]})")
        print(f"{'step':<9} {'commit':<12} {'verdict':<7} | {'kdebug build':>12} {'run':>6} {'step':>6} | "
              f"{'make':>6} {'crash-loop':>10} {'step':>6}")
        total_k = total_h = 0.0
        for row in rows:
            c = row["commit"]["hash"]
            kb = row["build_seconds"] or 0.0
            kr = sum(x["seconds"] for x in row["runs"])
            subprocess.run(["git", "-C", str(tmp / "hand"), "checkout", "-q", c], check=True)
            t0 = time.monotonic()
            subprocess.run(["make", "-C", str(headers), f"M={tmp / 'hand'}", "modules"], capture_output=True,
                           check=True)
            hb = time.monotonic() - t0
            hr, _ = kdebug("crash-loop", *rel, "--method", "qemu", "--no-crash", "--add",
                           f"{tmp / 'hand' / 'm.ko'}:/m.ko", "--run", "insmod /m.ko", "--out",
                           str(tmp / f"cap-{c[:12]}"), cwd=tmp)
            total_k += kb + kr
            total_h += hb + hr
            print(f"{row['label']:<9} {c[:12]:<12} {row['verdict']:<7} | {kb:12.1f} {kr:6.1f} {kb + kr:6.1f} | "
                  f"{hb:6.1f} {hr:10.1f} {hb + hr:6.1f}")
        over = (wall - total_k) / len(rows)
        print(f"total: kdebug bisect {wall:.1f} s (steps {total_k:.1f} s), by hand {total_h:.1f} s")
        print(f"kdebug overhead per step: {over:.1f} s = {100 * over / (total_k / len(rows)):.0f} % of a step "
              f"(git, state, start-up; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
