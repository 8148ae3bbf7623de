#!/usr/bin/env python3
"""kdebug shell: time to a ready prompt for each engine on the same dump, and
live drgn's task walk against kd-ps at the same gdb stop.

Ready prompt = the engine has the dump and the debug info loaded and has run
a first command that needs both (drgn: prog['init_task'].comm; crash: sys;
gdb: kd-ps --pid 1), each through `kdebug shell` as a user runs it, rounds
interleaved, medians; ratios against drgn measured in the same run. Then a
guest is booted, stopped under gdb, and kd-ps (gdb, shared-nothing stub path)
is timed against `kd_tasks()` in live drgn, both on the same stop.

    .venv/bin/python bench/shell.py [VMCORE] [-n 3]

Without VMCORE it makes a 512 MiB QEMU dump of a sysrq-c crash first.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KDEBUG = [sys.executable, "-m", "kdebug.cli.main"]
ENGINES = {
    "drgn": ["-c", "print(prog['init_task'].comm)"],
    "crash": ["--crash", "--batch", "--ex", "sys"],
    "gdb": ["--gdb", "--batch", "--ex", "kd-ps --pid 1"],
}


def timed(argv: list[str]) -> float:
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{r.stderr[-2000:]}")
    return dt


def bench_prompts(vmcore: str, rounds: int) -> None:
    times: dict[str, list[float]] = {e: [] for e in ENGINES}
    for _ in range(rounds):
        for engine, args in ENGINES.items():
            times[engine].append(timed([*KDEBUG, "shell", vmcore, *args]))
    base = statistics.median(times["drgn"])
    print(f"{'engine':8} {'median s':>9} {'ratio to drgn':>14}")
    for engine, ts in times.items():
        m = statistics.median(ts)
        print(f"{engine:8} {m:9.2f} {m / base:14.2f}")


def bench_live(rounds: int) -> None:
    from kdebug.analysis.live import open_live
    from kdebug.analysis.tasks import collect_tasks
    from kdebug.attach.mi import GdbMI
    from kdebug.attach.plan import GdbPlan, gdb_argv, host_python_path, index_cache_dir
    from kdebug.guest.introspect import kaslr_offset_from_qmp
    from kdebug.guest.qemu import boot
    from kdebug.guest.qmp import Qmp
    from kdebug.plan.prepare import LaunchOptions, prepare
    from kdebug.session import new_session

    session = new_session()
    try:
        prep = prepare(LaunchOptions(), session)
        with boot(prep.plan, session, timeout=120) as guest:
            guest.run("for i in $(seq 200); do sleep 600 & done; true", timeout=120)
            with Qmp(session.qmp_socket) as q:
                q.cmd("stop")
                offset = kaslr_offset_from_qmp(q, prep.kernel.vmlinux)
            plan = GdbPlan(vmlinux=prep.kernel.vmlinux, port=prep.plan.gdb_port, kaslr_offset=offset,
                           styled=False, index_cache=index_cache_dir(), python_path=host_python_path())
            forget = "python import kdebug.gdb_scripts.kdgdb.cache as c; c.forget_stop()"
            gdb_t, drgn_t, n = [], [], 0
            with GdbMI(gdb_argv(plan)) as gdb:
                gdb.execute("kd-ps")  # warm: type lookups
                for _ in range(rounds):
                    gdb.execute(forget)
                    t0 = time.monotonic()
                    n = len(gdb.execute("kd-ps").splitlines()) - 1
                    gdb_t.append(time.monotonic() - t0)
                    t0 = time.monotonic()
                    prog, _ = open_live(session.qmp_socket, guest.pid, prep.kernel.vmlinux)
                    t1 = time.monotonic()
                    tasks = collect_tasks(prog)
                    drgn_t.append(time.monotonic() - t1)
                    print(f"  live drgn open {t1 - t0:.2f} s, {len(tasks)} tasks; kd-ps {n} rows")
        g, d = statistics.median(gdb_t), statistics.median(drgn_t)
        print(f"task walk at one stop, {n} tasks: kd-ps {g:.3f} s, live drgn {d:.3f} s, ratio drgn/kd-ps {d / g:.2f}")
    finally:
        session.remove()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("vmcore", nargs="?")
    ap.add_argument("-n", type=int, default=3)
    args = ap.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    vmcore = args.vmcore
    if vmcore is None:
        from tests.vmcore.dumps import make_qemu_dump

        vmcore = make_qemu_dump(Path(tempfile.mkdtemp(prefix="kdebug-bench-")), "sysrq").path
    bench_prompts(vmcore, args.n)
    bench_live(args.n)


if __name__ == "__main__":
    main()
