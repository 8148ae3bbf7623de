#!/usr/bin/env python3
"""Post-mortem speed: `kdebug postmortem` against crash alone, same dump, same run.

crash alone runs the commands a support engineer types first (sys, bt, ps,
log, mod) from a command file; kdebug's full report runs drgn in-process while
crash runs its (longer) command file beside it, then cross-checks. N rounds,
interleaved so that machine load hits all alike; prints medians and ratios
(goal: full report no slower than crash alone). Then triage throughput for
M dumps (symlinks to the same dump), drgn only and full, 2 jobs. Then fleet
triage: the same M dumps through a Redis broker to 1 and 2 `kdebug worker`s
(one dump at a time each, started once and kept warm, as in a fleet) beside
the local run with 1 and 2 jobs, rounds interleaved, medians, dumps per
minute and each broker run's time as a ratio of the local run with as many
jobs: the queue's overhead per dump.

    .venv/bin/python bench/postmortem.py [VMCORE] [-n 3] [-m 4] [--no-fleet] [--release 6.12]
    .venv/bin/python bench/postmortem.py --tier0 KDUMP [-n 5]     # the tier-0 row only

Tier 0 (the report from the dump alone, no debug info; goal <= 1 s on a 40 MB
kdump dump): --tier0 KDUMP times it in-process (kdebug.postmortem.tier0, what
triage and the fleet call) and as the whole command `kdebug postmortem
--no-debuginfo` (Python start and imports included), interleaved, medians.

Without VMCORE it makes a 512 MiB QEMU dump of a sysrq-c crash first (of
--release's kernel). "crash alone" is the crash kdebug runs on that dump's
kernel (kdebug.crash.runner.pick_crash: on 6.12, the one setup builds).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdebug.crash.runner import pick_crash  # noqa: E402
from kdebug.vmcore.locate import open_dump  # noqa: E402

CRASH_COMMANDS = "sys\nbt\nps\nlog\nmod\nquit\n"


#: CPU seconds (user + system) of each timed command's whole process tree,
#: by command line: every process in it is waited for by its parent, so
#: RUSAGE_CHILDREN counts the triage workers and their crash processes too.
CPU: dict[tuple[str, ...], list[float]] = {}


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(argv: list[str], timeout: float = 600) -> float:
    c0, t0 = _children_cpu(), time.monotonic()
    res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, timeout=timeout)
    secs = time.monotonic() - t0
    CPU.setdefault(tuple(argv), []).append(_children_cpu() - c0)
    if res.returncode not in (0, 1):  # triage exits 1 only when a dump failed; none should here
        raise SystemExit(f"{argv[:3]} failed: {res.stderr[-500:]}")
    return secs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmcore", nargs="?")
    ap.add_argument("-n", type=int, default=3, help="rounds")
    ap.add_argument("-m", type=int, default=4, help="dumps for the triage throughput")
    ap.add_argument("--no-fleet", action="store_true", help="skip the broker runs")
    ap.add_argument("--release", help="kernel of the dump made when no VMCORE is given (e.g. 6.12)")
    ap.add_argument("--tier0", metavar="KDUMP", help="only the tier-0 row, on this (kdump-compressed) dump")
    args = ap.parse_args()
    if args.tier0:
        tier0(Path(args.tier0), args.n)
        return
    tmp = Path(tempfile.mkdtemp(prefix="kdebug-bench-"))
    if args.vmcore:
        vmcore = Path(args.vmcore)
    else:
        from tests.vmcore.dumps import make_qemu_dump

        print("making a sysrq-c QEMU dump ...", file=sys.stderr)
        vmcore = Path(make_qemu_dump(tmp / "dump", release=args.release).path)
    dump = open_dump(vmcore)
    choice = pick_crash(dump.vmlinux)
    if choice.binary is None:
        raise SystemExit(f"crash alone cannot run: {choice.reason}")
    crash = choice.binary.path
    print(f"crash: {choice.reason}", file=sys.stderr)
    cmds = tmp / "crash-cmds"
    cmds.write_text(CRASH_COMMANDS)
    kd = [sys.executable, "-m", "kdebug.cli.main"]
    from kdebug.crash.index import for_crash

    runs = {
        "crash alone (sys bt ps log mod)": [crash, "-s", str(dump.vmlinux), str(dump.path), "-i", str(cmds)],
        # What kdebug gives crash: the vmlinux copy with a .gdb_index (kdebug.crash.index).
        "crash alone, indexed vmlinux copy": [crash, "-s", str(for_crash(dump.vmlinux)), str(dump.path),
                                              "-i", str(cmds)],
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
    print(f"dump: {vmcore} ({dump.info.format}, {dump.info.size >> 20} MiB), {args.n} rounds, medians; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, secs in med.items():
        print(f"  {name:36s} {secs:6.2f} s   x{secs / base:.2f} of crash alone")

    tdir = tmp / "triage"
    tdir.mkdir()
    for j in range(args.m):
        (tdir / f"d{j}.vmcore").symlink_to(dump.path)
    # Triage: 2 jobs against the serial run (1 job), rounds interleaved.
    tri: dict[tuple[str, int], list[float]] = {}
    argvs: dict[tuple[str, int], list[str]] = {}
    for _ in range(args.n):
        for label, extra in (("drgn only", ["--no-crash"]), ("full", [])):
            for jobs in (1, 2):
                argvs[(label, jobs)] = [*kd, "triage", str(tdir), "--json", "--jobs", str(jobs), *extra]
                tri.setdefault((label, jobs), []).append(timed(argvs[(label, jobs)], timeout=1800))
    cores = len(os.sched_getaffinity(0))
    print(f"triage of {args.m} dumps, medians of {args.n} interleaved rounds, {cores} cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("  (CPU: user+system seconds of the whole run, workers and crash included; busy: CPU / wall, "
          f"of {cores}. A serial run already keeps crash and drgn side by side, so 2 jobs can be at most "
          "serial wall / (2-job CPU / cores) faster: the bound)")
    for (label, jobs), ts in tri.items():
        secs = statistics.median(ts)
        serial = statistics.median(tri[(label, 1)])
        cpu = statistics.median(CPU[tuple(argvs[(label, jobs)])])
        print(f"  triage {args.m} dumps, {jobs} job{'s' * (jobs > 1)}, {label:9s} {secs:6.2f} s   "
              f"{args.m / secs * 60:5.1f} dumps/min   x{serial / secs:.2f} of serial   CPU {cpu:6.2f} s   "
              f"busy {cpu / secs:.2f}   bound x{serial / (cpu / cores):.2f}"
              + ("   (goal >= 1.8 with 2 jobs, full)" if jobs == 2 and label == "full" else ""))
    if not args.no_fleet:
        fleet(kd, tdir, tmp, args.m, args.n)


def tier0(vmcore: Path, rounds: int) -> None:
    from kdebug.postmortem.tier0 import postmortem_nodebug
    from kdebug.vmcore.info import identify

    info = identify(vmcore)
    argv = [sys.executable, "-m", "kdebug.cli.main", "postmortem", str(vmcore), "--no-debuginfo", "--json", "-q"]
    inproc: list[float] = []
    command: list[float] = []
    sig = ""
    for _ in range(rounds):
        t0 = time.monotonic()
        sig = postmortem_nodebug(vmcore).signature
        inproc.append(time.monotonic() - t0)
        command.append(timed(argv))
    print(f"tier 0 of {vmcore} ({info.format}, {info.size / 1e6:.1f} MB, {info.release}), medians of {rounds} "
          f"interleaved rounds, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; signature: {sig}")
    print(f"  tier-0 report, in process                {statistics.median(inproc):6.2f} s   (goal <= 1 s)")
    print(f"  kdebug postmortem --no-debuginfo         {statistics.median(command):6.2f} s   (whole command)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(stack: ExitStack, argv: list[str], log: Path) -> subprocess.Popen:
    """A server for this run, in its own process group, stopped when the stack closes."""
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)

    def stop() -> None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stack.callback(stop)
    return proc


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{proc.args[:3]} did not start: {log.read_text()[-1000:]}")
        time.sleep(0.1)


def fleet(kd: list[str], tdir: Path, tmp: Path, m: int, rounds: int) -> None:
    """Dumps per minute through the broker with 1 and 2 workers, beside the local run."""
    if shutil.which("redis-server") is None:
        print("  fleet: redis-server is not installed (scripts/setup.sh): skipped")
        return
    port = _free_port()
    with ExitStack() as stack:
        redis = _spawn(stack, ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                               "--appendonly", "no", "--dir", str(tmp)], tmp / "redis.log")
        _wait_for(tmp / "redis.log", "Ready to accept connections", redis)
        # One Redis database per setup: the 1-worker runs reach only the lone worker.
        brokers = {1: f"redis://127.0.0.1:{port}/1", 2: f"redis://127.0.0.1:{port}/2"}
        t0 = time.monotonic()
        for n, url in brokers.items():
            for w in range(n):
                log = tmp / f"worker-{n}-{w}.log"
                proc = _spawn(stack, [*kd, "worker", "--broker", url, "--concurrency", "1",
                                      "--name", f"bench{n}-{w}@%h"], log)
                _wait_for(log, " ready.", proc)
        print(f"fleet: redis-server and 3 workers started in {time.monotonic() - t0:.1f} s (not counted below)")
        for label, extra in (("drgn only", ["--no-crash"]), ("full", [])):
            runs = {f"local, {n} job{'s' * (n > 1)}": [*kd, "triage", str(tdir), "--json", "--jobs", str(n), *extra]
                    for n in (1, 2)}
            runs |= {f"broker, {n} worker{'s' * (n > 1)}": [*kd, "triage", str(tdir), "--json", "--broker", url,
                                                           *extra] for n, url in brokers.items()}
            times: dict[str, list[float]] = {k: [] for k in runs}
            for i in range(rounds):
                for name, argv in runs.items():
                    times[name].append(timed(argv, timeout=1800))
                print(f"fleet {label} round {i + 1}/{rounds}: "
                      + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()), file=sys.stderr)
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"fleet triage, {m} dumps, {label}, medians of {rounds} interleaved rounds, "
                  f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            for name, secs in med.items():
                n = name.split(", ")[1].split()[0]
                local = med[f"local, {n} job{'s' * (n != '1')}"]
                print(f"  {name:18s} {secs:6.2f} s   {m / secs * 60:6.1f} dumps/min   "
                      f"x{secs / local:.2f} of local with {n} job{'s' * (n != '1')}   "
                      f"{(secs - local) / m:+.2f} s per dump")


if __name__ == "__main__":
    main()
