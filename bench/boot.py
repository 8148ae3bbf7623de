#!/usr/bin/env python3
"""Boot time: `kdebug run -- true` against bare QEMU, same kernel and initramfs, same run.

Both are timed from process start to the guest's shell being ready (kdebug's
init prints `kdebug-init: ready`), N rounds interleaved so that machine load
hits both alike; prints the medians and the ratio (goal: kdebug adds < 10%).

    .venv/bin/python bench/boot.py [-n 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdebug.initramfs.build import build_initramfs  # noqa: E402
from kdebug.initramfs.recipe import load_recipe  # noqa: E402
from kdebug.kernel import find_kernel  # noqa: E402

READY = b"kdebug-init: ready"


def time_until(argv: list[str], marker: bytes, stream: str, timeout: float = 120) -> float:
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pipe = p.stdout if stream == "stdout" else p.stderr
    try:
        buf = b""
        while marker not in buf:
            chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(1)
            if not chunk or time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{argv[0]} never printed {marker!r}")
            buf = buf[-4096:] + chunk
        return time.monotonic() - t0
    finally:
        p.kill()
        p.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    args = ap.parse_args()
    kernel = find_kernel()
    initrd = build_initramfs(load_recipe("busybox"), kernel).path
    bare = ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "1024", "-smp", "2",
            "-kernel", str(kernel.image), "-initrd", str(initrd),
            "-append", "console=ttyS0,115200 panic=-1", "-nodefaults", "-display", "none",
            "-serial", "stdio", "-no-reboot"]
    kd = [sys.executable, "-m", "kdebug.cli.main", "run", "--", "true"]
    time_until(bare, READY, "stdout")  # warm the page cache for both
    bares, kds = [], []
    for _ in range(args.n):
        bares.append(time_until(bare, READY, "stdout"))
        # kdebug says "guest ready" on stderr once its init's ready line arrived
        kds.append(time_until(kd, b"guest ready", "stderr"))
    b, k = statistics.median(bares), statistics.median(kds)
    print(f"kernel {kernel.release}, initramfs {initrd.stat().st_size / 1e6:.1f} MB, {args.n} rounds (TCG)")
    print(f"bare QEMU to shell : median {b:.2f} s  ({', '.join(f'{x:.2f}' for x in bares)})")
    print(f"kdebug run to shell: median {k:.2f} s  ({', '.join(f'{x:.2f}' for x in kds)})")
    print(f"ratio kdebug/bare  : {k / b:.3f}  (overhead {100 * (k / b - 1):+.1f}%, goal < +10%)")


if __name__ == "__main__":
    main()
