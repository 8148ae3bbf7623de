#!/usr/bin/env python3
"""kdebug bisect, per step, beside the same steps by hand, in the same run.

Two histories:

- **module**: N commits of tests/vm/test_bisect.py's module (the third
  brings a NULL write in init) against the distro kernel.
- **kernel**: tests/vm/bisect_history.py's Debian linux-source-6.1 with
  three commits on top (the second breaks /proc/version), each commit built
  with kdebug's debug fragment, incrementally from setup's debug tree.

Each is bisected with `kdebug bisect --runs 1`; its evidence rows give each
step's build and run seconds. Then the same commits, in the same order, by
hand: `git checkout`, the build (`make -C <headers> M=<tree> modules`; for
the kernel `make olddefconfig bzImage vmlinux` in a second worktree started
from the same seed), and `kdebug crash-loop --method qemu --no-crash --run
REPRODUCER` (a dump and a report at each bad step; a clean step ends when
the command returns).

kdebug's own overhead per step: its wall time less the one-time setup
(worktree, configuration, seed: everything before the first step starts)
and less the builds and runs it reports, divided by the steps, as a share
of its mean step. Builds are fresh (kdebug's stored builds of these
commits are dropped first).

    .venv/bin/python bench/bisect_steps.py [--history module,kernel] [-n 4] [--release 6.1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdebug.bisect import ktree  # noqa: E402
from kdebug.capture.module import headers_dir  # noqa: E402
from kdebug.kbuild import DEFAULT_FRAGMENT  # noqa: E402
from kdebug.kernel import find_kernel  # noqa: E402
from kdebug.paths import cache_dir  # noqa: E402
from tests.vm import bisect_history  # noqa: E402
from tests.vm.test_bisect import make_history  # noqa: E402

_STAMP = re.compile(r"^kdebug: \[\s*([\d.]+) s\] (bad end|good end|step \d+)", re.M)


def kdebug(*args: str, cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "kdebug.cli.main", *args], capture_output=True, text=True, cwd=cwd)
    return time.monotonic() - t0, r


def timed(argv: list[str], **kw) -> float:
    t0 = time.monotonic()
    subprocess.run(argv, capture_output=True, check=True, **kw)
    return time.monotonic() - t0


def bisect(src_opt: str, repo: Path, good: str, bad: str, reproducer: str, extra: list[str],
           tmp: Path) -> tuple[float, float, dict, str]:
    """kdebug bisect's wall time, its setup time, the result, stderr."""
    out = tmp / "r.json"
    wall, r = kdebug("bisect", src_opt, str(repo), "--good", good, "--bad", bad, "--run", reproducer,
                     "--runs", "1", "--format", "json", "-o", str(out), *extra, cwd=tmp)
    kdebug("bisect", src_opt, str(repo), "--reset", cwd=tmp)
    if r.returncode != 0:
        sys.exit(f"kdebug bisect failed: {r.stderr[-3000:]}")
    first = _STAMP.search(r.stderr)
    return wall, float(first.group(1)) if first else 0.0, json.loads(out.read_text()), r.stderr


def report(name: str, rows: list[dict], hand: list[tuple[float, float]], wall: float, setup: float,
           truth: str, found: str) -> None:
    print(f"\n{name}: {len(rows)} steps; first bad {found[:12]} (truth {truth[:12]}); "
          f"kdebug setup (worktree, config, seed) {setup:.1f} s")
    print(f"{'step':<9} {'commit':<12} {'verdict':<7} | {'kdebug build':>12} {'run':>6} {'step':>6} | "
          f"{'make':>6} {'crash-loop':>10} {'step':>6}")
    total_k = total_h = 0.0
    for row, (hb, hr) in zip(rows, hand, strict=True):
        kb = row["build_seconds"] or 0.0
        kr = sum(x["seconds"] for x in row["runs"])
        total_k += kb + kr
        total_h += hb + hr
        print(f"{row['label']:<9} {row['commit']['hash'][:12]:<12} {row['verdict']:<7} | {kb:12.1f} {kr:6.1f} "
              f"{kb + kr:6.1f} | {hb:6.1f} {hr:10.1f} {hb + hr:6.1f}")
    over = (wall - setup - total_k) / len(rows)
    print(f"total: kdebug bisect {wall:.1f} s (setup {setup:.1f} s, steps {total_k:.1f} s), by hand "
          f"{total_h:.1f} s")
    print(f"kdebug overhead per step: {over:.1f} s = {100 * over / (total_k / len(rows)):.1f} % of a step "
          f"(git bisect, checkout, state; load average {os.getloadavg()[0]:.1f})")


def module_history(commits: int, release: str | None, tmp: Path) -> None:
    kernel = find_kernel(release=release)
    headers = headers_dir(kernel)
    rel = ["--release", kernel.release]
    kinds = ["ok", "ok"] + ["null"] * (commits - 2)
    hashes = make_history(tmp / "m", kinds)
    wall, setup, res, _ = bisect("--module-src", tmp / "m", hashes[0], hashes[-1], "insmod /m.ko",
                                 ["--add", "m.ko:/m.ko", *rel], tmp)
    subprocess.run(["git", "clone", "-q", str(tmp / "m"), str(tmp / "hand")], check=True)
    hand = []
    for row in res["evidence"]:
        c = row["commit"]["hash"]
        subprocess.run(["git", "-C", str(tmp / "hand"), "checkout", "-q", c], check=True)
        hb = timed(["make", "-C", str(headers), f"M={tmp / 'hand'}", "modules"])
        hr, _ = kdebug("crash-loop", *rel, "--method", "qemu", "--no-crash", "--add",
                       f"{tmp / 'hand' / 'm.ko'}:/m.ko", "--run", "insmod /m.ko", "--out",
                       str(tmp / f"cap-{c[:12]}"), cwd=tmp)
        hand.append((hb, hr))
    report(f"module history, kernel {kernel.release}", res["evidence"], hand, wall, setup, hashes[2],
           res["first_bad"]["hash"])


def kernel_history(tmp: Path) -> None:
    repo, hashes, _ = bisect_history.kernel_history(say=lambda m: print(f"history: {m}", file=sys.stderr))
    for h in hashes:
        for d in cache_dir("bisect", "kernels").glob(f"{h}-*"):
            shutil.rmtree(d)
    wall, setup, res, _ = bisect("--src", repo, hashes[0], hashes[-1], bisect_history.REPRODUCER, [], tmp)
    # By hand: a worktree of the same repository, started from the same seed.
    wt = tmp / "hand"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "--detach", str(wt), hashes[-1]], check=True)
    hand = []
    try:
        config = tmp / "hand.config"
        ktree.make_config(wt, ktree.KernelConfig((DEFAULT_FRAGMENT,)), config, tmp / "config.log")
        ktree.seed(repo, wt, hashes[-1], config, say=lambda m: print(f"hand: {m}", file=sys.stderr))
        for row in res["evidence"]:
            c = row["commit"]["hash"]
            subprocess.run(["git", "-C", str(wt), "checkout", "-q", "--detach", c], check=True)
            shutil.copyfile(config, wt / ".config")
            hb = timed(["make", "-C", str(wt), "olddefconfig"]) + \
                timed(["make", "-C", str(wt), f"-j{os.cpu_count()}", "bzImage", "vmlinux"])
            hr, _ = kdebug("crash-loop", "--tree", str(wt), "--method", "qemu", "--no-crash", "--run",
                           bisect_history.REPRODUCER, "--out", str(tmp / f"cap-{c[:12]}"), cwd=tmp)
            hand.append((hb, hr))
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(wt)], check=False)
    report("kernel history (linux-source-6.1 + 3 commits, debug fragment)", res["evidence"], hand, wall, setup,
           hashes[bisect_history.BAD + 1], res["first_bad"]["hash"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", default="module,kernel", help="module, kernel or both (comma-separated)")
    ap.add_argument("-n", "--commits", type=int, default=4, help="commits of the module history (>= 3)")
    ap.add_argument("--release", help="the module history's distro kernel")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kdebug-bench-bisect-") as tmp:
        for h in a.history.split(","):
            d = Path(tmp) / h
            d.mkdir()
            if h == "module":
                module_history(max(3, a.commits), a.release, d)
            elif h == "kernel":
                kernel_history(d)
            else:
                sys.exit(f"unknown history {h!r} (module, kernel)")


if __name__ == "__main__":
    main()
