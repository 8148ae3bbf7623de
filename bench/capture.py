#!/usr/bin/env python3
"""Capture time and size: `kdebug capture` per method and dump level against
the hand-run pipeline of the same stages, in the same run.

The peer is what a user types today: a plain QEMU command (same kernel,
same busybox initramfs, a raw virtio disk), `kexec -p` by hand, sysrq-c,
then `cat /proc/vmcore > /dev/vda` in the capture kernel. Every variant is
timed from process start to the vmcore on the host's disk; rows print the
seconds, the vmcore size (and its share of guest RAM) and the ratio of
times against the peer. Rounds are interleaved so machine load hits all alike.

    .venv/bin/python bench/capture.py [-n 1] [--quick] [--live [--before REF]]

Goals (issue 4): start to vmcore under 9 s; under 5% of guest RAM at -d 31.
Issue 12: under 7 s; `--capture-kernel crashed` is the row before the small
capture kernel (--quick runs the default, that row and the peer).
Issue 10: beside each method's sysrq row, a --run reproducer that oopses (an
out-of-tree module built against the kernel's headers, tests/fixtures/oot).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pexpect  # noqa: E402

from kdebug.capture.api import capture  # noqa: E402
from kdebug.capture.plan import CaptureOptions  # noqa: E402
from kdebug.initramfs.build import build_initramfs  # noqa: E402
from kdebug.initramfs.recipe import load_recipe  # noqa: E402
from kdebug.kernel import find_kernel  # noqa: E402
from kdebug.plan.prepare import LaunchOptions  # noqa: E402

MEMORY_MB = 1024


def hand_run(work: Path, kernel, initrd: Path) -> tuple[float, int]:
    """The peer: plain QEMU, kexec -p, sysrq-c, cat /proc/vmcore to a raw disk."""
    disk = work / "disk.raw"
    with open(disk, "wb") as f:
        f.truncate(MEMORY_MB << 20)  # sparse; big enough for the ELF of all RAM
    argv = ["-machine", "pc,accel=tcg", "-m", str(MEMORY_MB), "-smp", "2", "-kernel", str(kernel.image),
            "-initrd", str(initrd), "-append", "console=ttyS0,115200 panic=-1 crashkernel=128M",
            "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
            "-drive", f"file={disk},if=virtio,format=raw"]
    t0 = time.monotonic()
    child = pexpect.spawn("qemu-system-x86_64", argv, encoding="utf-8", codec_errors="replace",
                          timeout=180, dimensions=(50, 1000))
    try:
        child.expect("ready role=main")
        child.sendline("kexec -s -p /kdump/vmlinuz --initrd=/kdump/initrd.img "
                       "--append='console=ttyS0,115200 panic=-1 irqpoll nr_cpus=1 reset_devices'"
                       " && echo c > /proc/sysrq-trigger")
        child.expect("ready role=capture")
        child.sendline("cat /proc/vmcore > /dev/vda && sync && echo HAND-DONE-$((40+2))")
        child.expect("HAND-DONE-42")
        seconds = time.monotonic() - t0
    except pexpect.ExceptionPexpect as e:
        raise RuntimeError(f"hand-run pipeline failed: {type(e).__name__}; console tail: "
                           f"{(child.before or '')[-800:]!r}") from None
    finally:
        if child.isalive():
            child.kill(signal.SIGKILL)
        child.wait() if not child.closed else None
    # The ELF sits at the start of the disk; its size is what /proc/vmcore had.
    return seconds, _elf_size(disk)


def _elf_size(disk: Path) -> int:
    from kdebug import elf

    with open(disk, "rb") as f:
        hdr = elf.parse_elf_header(elf.file_reader(f))
    return max(s.offset + s.filesz for s in hdr.segments)


VARIANTS = [
    ("kdump lzo -d31", dict(method="kdump", compression="lzo", dump_level=31)),
    # Before issue 12: the crashed kernel boots again as the capture kernel.
    ("kdump lzo -d31 --capture-kernel crashed",
     dict(method="kdump", compression="lzo", dump_level=31, capture_kernel="crashed")),
    ("kdump lzo -d31 --via disk", dict(method="kdump", compression="lzo", dump_level=31, via="disk")),
    ("kdump zlib -d31", dict(method="kdump", compression="zlib", dump_level=31)),
    ("kdump none -d31", dict(method="kdump", compression="none", dump_level=31)),
    ("kdump lzo -d1", dict(method="kdump", compression="lzo", dump_level=1)),
    ("kdump --raw (ELF)", dict(method="kdump", raw=True)),
    ("qemu (ELF)", dict(method="qemu")),
]


#: A user's reproducer that oopses (issue 10): tests/fixtures/oot/m.c, built
#: against the kernel's headers, writes through NULL from a work item after
#: insmod returned; with panic_on_oops (captures set it) that is the crash.
#: Each row sits beside the sysrq row of its method.
REPRODUCERS = [
    ("kdump lzo -d31", "kdump lzo -d31, --run oopsing module",
     dict(method="kdump", compression="lzo", dump_level=31, run="insmod /m.ko")),
    ("qemu (ELF)", "qemu (ELF), --run oopsing module", dict(method="qemu", run="insmod /m.ko")),
]
OOT_SOURCE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "oot"


def oot_module(kernel, work: Path) -> Path:
    """m.ko built with the kernel's own Kbuild, as a developer builds one."""
    from kdebug.capture.module import headers_dir

    d = work / "oot"
    d.mkdir()
    for f in ("m.c", "Kbuild"):
        shutil.copy(OOT_SOURCE / f, d)
    subprocess.run(["make", "-C", str(headers_dir(kernel)), f"M={d}", "modules"], check=True,
                   capture_output=True, timeout=600)
    return d / "m.ko"


#: Boot, gdb at the KASLR offset, one kd-ps, quit; the peer boots the same
#: guest and runs `true` in its shell: the ratio is attach's own cost.
#: The third row is attach as it was before issue 12's change: gdb started
#: only once the guest is at its shell (KDEBUG_EARLY_GDB=0), not while it boots.
_ATTACH = [sys.executable, "-m", "kdebug.cli.main", "attach", "--batch", "--ex", "kd-ps"]
LIVE = {
    "kdebug run -- true": ([sys.executable, "-m", "kdebug.cli.main", "run", "--", "true"], {}),
    "kdebug attach --batch --ex kd-ps": (_ATTACH, {}),
    "  same, gdb only after the boot": (_ATTACH, {"KDEBUG_EARLY_GDB": "0"}),
}


def whole_command(argv: list[str], env: dict[str, str] | None = None) -> float:
    """``env`` may name a working directory as ``__cwd__`` (a --before row)."""
    env = dict(env or {})
    cwd = env.pop("__cwd__", None)
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, env={**os.environ, **env}, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[3:])} failed: {r.stderr[-800:]}")
    return time.monotonic() - t0


def live_rows(live: dict[str, list[float]], rounds: int) -> None:
    """Run ``rounds`` more interleaved rounds of the LIVE rows, then print them all."""
    for i in range(rounds):
        for name, (argv, env) in LIVE.items():
            live.setdefault(name, []).append(whole_command(argv, env))
        print(f"live round {i + 1}/{rounds}: " + ", ".join(f"{v[-1]:.2f}" for v in live.values()), file=sys.stderr)
    run_true = statistics.median(live["kdebug run -- true"])
    print(f"\n{'live guest, whole command':40} {'seconds':>8} {'vs run':>8}   (goal: attach <= 3.5 s); "
          f"{len(live['kdebug run -- true'])} round(s), medians, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, ts in live.items():
        t = statistics.median(ts)
        print(f"{name:40} {t:8.2f} {t / run_true:7.2f}x")


def kdebug_run(work: Path, name: str, kw: dict, files: dict[str, Path] | None = None) -> tuple[float, int, dict]:
    out = work / re.sub(r"\W+", "-", name)
    t0 = time.monotonic()
    crash = "auto" if kw["method"] == "kdump" else None
    cap = capture(LaunchOptions(crashkernel=crash, memory=f"{MEMORY_MB}M", extra_files=files or {}),
                  CaptureOptions(out=out, **kw))
    seconds = time.monotonic() - t0
    stages = {s.name: s.seconds for s in cap.stages}
    if cap.capture_kernel:
        stages["capture kernel"] = f"{cap.capture_kernel['source']} {cap.capture_kernel['release']}"
    size = cap.sizes["vmcore"]
    shutil.rmtree(out)
    return seconds, size, stages


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1, help="rounds")
    ap.add_argument("--quick", action="store_true",
                    help="only the default kdump variant, the crashed kernel as capture kernel, and the peer")
    ap.add_argument("--live", action="store_true", help="only the live-guest rows")
    ap.add_argument("--before", metavar="REF",
                    help="kdebug at this commit too: the live rows, or (without --live) the default "
                         "kdump capture as a whole command, beside the same command now")
    args = ap.parse_args()
    # These rows time boots: no warm start (kdebug.warm; bench/warm.py times those).
    os.environ["KDEBUG_WARM"] = "0"
    if args.live:
        with contextlib.ExitStack() as stack:
            if args.before:
                from bench.before import checkout, env_for

                tree = stack.enter_context(checkout(args.before))
                env = {**env_for(tree), "__cwd__": str(tree)}
                for name, (argv, _) in list(LIVE.items())[:2]:
                    LIVE[f"  {name.strip()} at {args.before}"] = (argv, env)
                for argv, env_ in list(LIVE.values())[-2:]:
                    whole_command(argv, env_)  # its initramfs, its gdb index
            live_rows({}, args.n)
        return
    with contextlib.ExitStack() as stack:
        commands = {}
        if args.before:
            from bench.before import checkout, env_for

            tree = stack.enter_context(checkout(args.before))
            commands = {"kdebug capture, whole command": {},
                        f"  same at {args.before}": {**env_for(tree), "__cwd__": str(tree)}}
        capture_rows(args, commands)


#: The default capture as a user types it (the rows above call the API).
_CAPTURE = [sys.executable, "-m", "kdebug.cli.main", "capture", "-m", f"{MEMORY_MB}M", "--out"]


def capture_command(work: Path, env: dict[str, str]) -> tuple[float, int]:
    out = work / "command"
    seconds = whole_command([*_CAPTURE, str(out)], env)
    size = (out / "vmcore").stat().st_size
    shutil.rmtree(out)
    return seconds, size


def capture_rows(args, commands: dict[str, dict[str, str]]) -> None:
    """The capture variants (and ``commands``: name -> environment of a
    whole-command row) against the hand-run peer, interleaved."""
    kernel = find_kernel()
    initrd = build_initramfs(load_recipe("busybox"), kernel).path
    variants = VARIANTS[:2] if args.quick else VARIANTS
    times: dict[str, list[float]] = {"hand-run (cat /proc/vmcore > raw disk)": []}
    sizes: dict[str, int] = {}
    stage_rows: dict[str, dict] = {}
    live: dict[str, list[float]] = {}
    ran = {name for name, _ in variants}
    reproducers = [r for r in REPRODUCERS if r[0] in ran]
    with tempfile.TemporaryDirectory(prefix="kdebug-bench-", dir=os.environ.get("TMPDIR")) as tmp:
        work = Path(tmp)
        ko = oot_module(kernel, work)
        for env in commands.values():
            capture_command(work, env)  # each code's initramfs built before the timed rounds
        for _ in range(args.n):
            s, size = hand_run(work, kernel, initrd)
            times["hand-run (cat /proc/vmcore > raw disk)"].append(s)
            sizes["hand-run (cat /proc/vmcore > raw disk)"] = size
            (work / "disk.raw").unlink()
            for name, (argv, env) in LIVE.items():
                live.setdefault(name, []).append(whole_command(argv, env))
            for name, kw in variants:
                s, size, stages = kdebug_run(work, name, kw)
                times.setdefault(name, []).append(s)
                sizes[name] = size
                stage_rows[name] = stages
            for _, name, kw in reproducers:
                s, size, stages = kdebug_run(work, name, kw, {"m.ko": ko})
                times.setdefault(name, []).append(s)
                sizes[name] = size
                stage_rows[name] = stages
            for name, env in commands.items():
                s, sizes[name] = capture_command(work, env)
                times.setdefault(name, []).append(s)
    peer = statistics.median(times["hand-run (cat /proc/vmcore > raw disk)"])
    ram = MEMORY_MB << 20
    print(f"guest {MEMORY_MB} MiB, kernel {kernel.release}, {args.n} round(s), medians; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'variant':40} {'seconds':>8} {'vs hand':>8} {'size MB':>9} {'% RAM':>6}")
    beside = {sysrq: name for sysrq, name, _ in reproducers}
    for name in [n for n in times if n not in beside.values()]:
        for row in (name, beside.get(name)):
            if row:
                t = statistics.median(times[row])
                print(f"{row:40} {t:8.1f} {t / peer:7.2f}x {sizes[row] / 1e6:9.1f} {100 * sizes[row] / ram:5.1f}%")
    live_rows(live, 0)
    print("\nstages of the last round (s):")
    for name, st in stage_rows.items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k}: {v}"
                                         for k, v in st.items()))


if __name__ == "__main__":
    main()
