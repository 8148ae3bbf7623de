#!/usr/bin/env python3
"""Post-mortem speed: `kdebug postmortem` against crash alone, same dump, same run.

crash alone runs the commands a support engineer types first (sys, bt, ps,
log, mod) from a command file; kdebug's full report runs drgn in-process while
crash runs its (longer) command file beside it, then cross-checks. N rounds,
interleaved so that machine load hits all alike; prints medians and ratios
(goal: full report no slower than crash alone). Then triage throughput for
M dumps (symlinks to the same dump), drgn only and full, 2 jobs.

    .venv/bin/python bench/postmortem.py [VMCORE] [-n 3] [-m 4]

Without VMCORE it makes a 512 MiB QEMU dump of a sysrq-c crash first.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdebug.vmcore.locate import open_dump  # noqa: E402

CRASH_COMMANDS = "sys\nbt\nps\nlog\nmod\nquit\n"


def timed(argv: list[str], timeout: float = 600) -> float:
    t0 = time.monotonic()
    res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, timeout=timeout)
    secs = time.monotonic() - t0
    if res.returncode not in (0, 1):  # triage exits 1 only when a dump failed; none should here
        raise SystemExit(f"{argv[:3]} failed: {res.stderr[-500:]}")
    return secs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmcore", nargs="?")
    ap.add_argument("-n", type=int, default=3, help="rounds")
    ap.add_argument("-m", type=int, default=4, help="dumps for the triage throughput")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kdebug-bench-"))
    if args.vmcore:
        vmcore = Path(args.vmcore)
    else:
        from tests.vmcore.dumps import make_qemu_dump

        print("making a sysrq-c QEMU dump ...", file=sys.stderr)
        vmcore = Path(make_qemu_dump(tmp / "dump").path)
    dump = open_dump(vmcore)
    cmds = tmp / "crash-cmds"
    cmds.write_text(CRASH_COMMANDS)
    kd = [sys.executable, "-m", "kdebug.cli.main"]
    runs = {
        "crash alone (sys bt ps log mod)": ["crash", "-s", str(dump.vmlinux), str(dump.path), "-i", str(cmds)],
        "kdebug postmortem (drgn + crash)": [*kd, "postmortem", str(vmcore), "--format", "json", "-q"],
        "kdebug postmortem --no-crash": [*kd, "postmortem", str(vmcore), "--format", "json", "-q", "--no-crash"],
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for i in range(args.n):
        for name, argv in runs.items():
            times[name].append(timed(argv))
        print(f"round {i + 1}/{args.n}: " + ", ".join(f"{k.split(' (')[0]} {v[-1]:.1f}s"
                                                      for k, v in times.items()), file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["crash alone (sys bt ps log mod)"]
    print(f"dump: {vmcore} ({dump.info.format}, {dump.info.size >> 20} MiB), {args.n} rounds, medians")
    for name, secs in med.items():
        print(f"  {name:36s} {secs:6.2f} s   x{secs / base:.2f} of crash alone")

    tdir = tmp / "triage"
    tdir.mkdir()
    for j in range(args.m):
        (tdir / f"d{j}.vmcore").symlink_to(dump.path)
    for label, extra in (("drgn only", ["--no-crash"]), ("full", [])):
        secs = timed([*kd, "triage", str(tdir), "--json", "--jobs", "2", *extra], timeout=1800)
        print(f"  triage {args.m} dumps, 2 jobs, {label:9s} {secs:6.2f} s   "
              f"{args.m / secs * 60:5.1f} dumps/min   x{secs / (args.m * base):.2f} of crash alone per dump")


if __name__ == "__main__":
    main()
