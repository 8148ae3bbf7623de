#!/usr/bin/env python3
"""kd- commands against the kernel's own lx- commands, in one gdb session.

1. On the debug kernel from `kdebug kernel build` (it has scripts_gdb): start
   N `sleep` processes in the guest, stop it, and time kd-ps vs lx-ps and
   kd-dmesg vs lx-dmesg (best of R runs each, after one warm-up run of each).
2. On the default (Debian) kernel: time from starting gdb to the first kd-ps
   output, cold (empty gdb index cache) and warm (the same cache again).

Prints the times and the ratios (peer / ours). Usage:
    .venv/bin/python bench/gdb_commands.py [--tasks 1000] [--runs 3] [--tree DIR] [--skip-attach]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdebug.attach.mi import GdbMI  # noqa: E402
from kdebug.attach.plan import GdbPlan, gdb_argv, host_python_path, index_cache_dir  # noqa: E402
from kdebug.attach.ram import ram_file_path, share_ram  # noqa: E402
from kdebug.guest.introspect import kaslr_offset_from_qmp  # noqa: E402
from kdebug.guest.qemu import boot  # noqa: E402
from kdebug.guest.qmp import Qmp  # noqa: E402
from kdebug.plan.prepare import LaunchOptions, prepare  # noqa: E402
from kdebug.session import new_session  # noqa: E402

# kd-ps caches per stop: drop it between runs
# kdgdb.cache since the split of kdgdb.core (a --before tree may still have core)
FORGET = ("python import kdebug.gdb_scripts.kdgdb as k; "
          "(k.cache.forget_stop if hasattr(k, 'cache') else k.core._forget_stop)()")


def booted(opts: LaunchOptions):
    """(session, prepared, guest, ram file): booted as `kdebug attach` does."""
    session = new_session()
    prep = prepare(opts, session)
    ram = ram_file_path(session)
    guest = boot(share_ram(prep.plan, ram), session, timeout=180)
    return session, prep, guest, ram


def cleanup(session, guest, ram) -> None:
    guest.close()
    ram.unlink(missing_ok=True)
    session.remove()


def stop_and_offset(guest, kernel) -> int:
    with Qmp(guest.session.qmp_socket) as q:
        q.cmd("stop")
        return kaslr_offset_from_qmp(q, kernel.vmlinux)


def best(driver: GdbMI, cmd: str, runs: int, forget: bool) -> tuple[float, float, int]:
    """(best seconds inside gdb, best seconds end to end through gdb's machine interface, lines)."""
    inside, through = [], []
    lines = 0
    for _ in range(runs):
        if forget:
            driver.run(FORGET)
        py = (f"python import time as _t; _s = _t.monotonic(); _o = gdb.execute({cmd!r}, to_string=True); "
              "print(f'{_t.monotonic() - _s:.6f} {len(_o.splitlines())}')")
        out = driver.run(py, timeout=900)
        dt, n = out.split()[-2:]
        inside.append(float(dt))
        lines = int(n)
        if forget:
            driver.run(FORGET)
        t0 = time.monotonic()
        out = driver.execute(cmd, timeout=900)
        dt = time.monotonic() - t0
        assert "Traceback" not in out, out[:500]
        through.append(dt)
    return min(inside), min(through), lines


def bench_commands(tree: Path, ntasks: int, runs: int) -> None:
    session, prep, guest, ram = booted(LaunchOptions(tree=tree))
    try:
        t0 = time.monotonic()
        guest.run(f"i=0; while [ $i -lt {ntasks} ]; do sleep 100000 & i=$((i+1)); done; echo", timeout=900)
        count = guest.run("ls -d /proc/[0-9]* | wc -l").output.strip()
        print(f"guest: {count} tasks ({ntasks} sleeps started in {time.monotonic() - t0:.1f} s)")
        offset = stop_and_offset(guest, prep.kernel)
        plan = GdbPlan(vmlinux=prep.kernel.vmlinux, port=prep.plan.gdb_port, kaslr_offset=offset, styled=False,
                       index_cache=index_cache_dir(), kernel_scripts=prep.kernel.gdb_scripts, ram_file=ram,
                       python_path=host_python_path())
        with GdbMI(gdb_argv(plan)) as d:
            for cmd in ("kd-ps", "lx-ps", "kd-dmesg", "lx-dmesg"):
                d.run(cmd, timeout=900)  # warm-up: type lookups, gdb's symbol caches
            rows = []
            for ours, peer in (("kd-ps", "lx-ps"), ("kd-dmesg", "lx-dmesg")):
                rows.append((ours, best(d, ours, runs, forget=True), peer, best(d, peer, runs, forget=False)))
            print(d.run("kd-memory"))
            d.run("kd-memory off")  # the same commands with every read over the gdbstub, as lx- does
            for ours, peer in (("kd-ps", "lx-ps"), ("kd-dmesg", "lx-dmesg")):
                rows.append((ours + "*", best(d, ours, runs, forget=True), peer,
                             next(r[3] for r in rows if r[2] == peer)))
            # What `attach --session` does for a guest it did not start: QEMU's /proc/PID/mem.
            from kdebug.attach.flow import _session_memory

            with Qmp(guest.session.qmp_socket) as q:
                fast = _session_memory(q, guest.pid, prep.kernel.vmlinux, offset, print)
            if fast:
                d.run(f"kd-memory {fast['ram_file']} --base {fast['ram_base']:#x} --size {fast['ram_size']:#x}")
                for ours, peer in (("kd-ps", "lx-ps"), ("kd-dmesg", "lx-dmesg")):
                    rows.append((ours + "+", best(d, ours, runs, forget=True), peer,
                                 next(r[3] for r in rows if r[2] == peer)))
        print(f"{'ours':10} {'in gdb s':>9} {'e2e s':>7} {'lines':>6}   {'peer':9} {'in gdb s':>9} {'e2e s':>7} "
              f"{'lines':>6}   ratio in gdb / e2e")
        for ours, (oi, ot, on), peer, (pi, pt, pn) in rows:
            print(f"{ours:10} {oi:9.3f} {ot:7.3f} {on:6d}   {peer:9} {pi:9.3f} {pt:7.3f} {pn:6d}   "
                  f"{pi / oi:6.1f}x / {pt / ot:4.1f}x")
        print("(* = kd-memory off; + = guest RAM from QEMU's /proc/PID/mem, as attach --session reads it. "
              "'in gdb': the command run with to_string; 'e2e': its output through gdb's MI to the driver)")
    finally:
        cleanup(session, guest, ram)


def bench_attach() -> None:
    session, prep, guest, ram = booted(LaunchOptions())
    try:
        offset = stop_and_offset(guest, prep.kernel)
        with tempfile.TemporaryDirectory() as cache:
            results = []
            for label in ("cold", "warm"):
                plan = GdbPlan(vmlinux=prep.kernel.vmlinux, port=prep.plan.gdb_port, kaslr_offset=offset,
                               styled=False, index_cache=Path(cache), ram_file=ram, python_path=host_python_path())
                t0 = time.monotonic()
                with GdbMI(gdb_argv(plan), timeout=900) as d:
                    out = d.run("kd-ps", timeout=900)
                    dt = time.monotonic() - t0
                assert " init" in out
                results.append(dt)
                print(f"attach to first kd-ps output ({label} gdb index cache): {dt:.1f} s")
            print(f"cold/warm: {results[0] / results[1]:.1f}x")
    finally:
        cleanup(session, guest, ram)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tree", type=Path, help="debug kernel tree (default: the cached `kdebug kernel build`)")
    ap.add_argument("--skip-attach", action="store_true")
    a = ap.parse_args()
    from kdebug.kbuild import built_tree

    tree = a.tree or built_tree()
    if tree is None:
        print("no debug kernel: run `kdebug kernel build` first", file=sys.stderr)
        return 2
    bench_commands(tree, a.tasks, a.runs)
    if not a.skip_attach:
        bench_attach()
    return 0


if __name__ == "__main__":
    sys.exit(main())
