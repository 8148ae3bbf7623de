#!/usr/bin/env python3
"""Boot time: `kdebug run -- true` against bare QEMU, same kernel, same run.

Rows, each a median over N interleaved rounds (machine load hits all alike):
- bare QEMU + a minimal busybox initramfs (busybox and a two-line /init, packed
  with cpio and gzip by hand): the peer a user would type, timed from process
  start to its first shell line;
- the same with the kernel parameters of kdebug's profile (cryptomgr.notests
  among them), then with its firmware too (qboot): what of kdebug's lead
  comes from the kernel and the firmware, not from kdebug;
- bare QEMU + kdebug's own initramfs, to kdebug's ready line;
- `kdebug run -- true`, the whole command (start to exit: boot, the command,
  the guest stopped), and to its "guest ready" line.
Ratios are against the minimal peer (goal for the whole command: <= 1.1).
``--before REF`` adds the same two kdebug rows for the code at commit REF.

    .venv/bin/python bench/boot.py [-n 5] [--release 6.12] [--before REF]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdebug.initramfs.build import build_initramfs  # noqa: E402
from kdebug.initramfs.recipe import load_recipe  # noqa: E402
from kdebug.kernel import find_kernel  # noqa: E402
from kdebug.plan.profile import find_firmware, load_profile  # noqa: E402

READY = b"kdebug-init: ready"
PEER_READY = b"peer-ready"


def time_until(argv: list[str], marker: bytes, stream: str, timeout: float = 120,
               where: tuple[Path, dict] | None = None) -> float:
    t0 = time.monotonic()
    cwd, env = where or (None, None)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=cwd, env=env)
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


def time_whole(argv: list[str], timeout: float = 120, where: tuple[Path, dict] | None = None) -> float:
    t0 = time.monotonic()
    cwd, env = where or (None, None)
    subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=True,
                   cwd=cwd, env=env)
    return time.monotonic() - t0


def minimal_initramfs(directory: Path) -> Path:
    """busybox + /init, as by hand: cpio -o -H newc | gzip."""
    root = directory / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin/busybox")
    init = root / "init"
    init.write_text("#!/bin/busybox sh\n/bin/busybox mkdir -p /proc && /bin/busybox mount -t proc proc /proc\n"
                    f"echo {PEER_READY.decode()}\nexec /bin/busybox sh\n")
    init.chmod(0o755)
    out = directory / "minimal.img"
    names = subprocess.run(["find", "."], cwd=root, capture_output=True, text=True, check=True).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=names.encode(),
                          capture_output=True, check=True).stdout
    out.write_bytes(subprocess.run(["gzip", "-c"], input=cpio, capture_output=True, check=True).stdout)
    return out


def bare_argv(kernel, initrd: Path, params: tuple[str, ...] = ("console=ttyS0,115200", "panic=-1")) -> list[str]:
    return ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "1024", "-smp", "2",
            "-kernel", str(kernel.image), "-initrd", str(initrd),
            "-append", " ".join(params), "-nodefaults", "-display", "none",
            "-serial", "stdio", "-no-reboot"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--release")
    ap.add_argument("--before", metavar="REF", help="also time kdebug at this commit")
    args = ap.parse_args()
    # These rows time the boot: no warm start (kdebug.warm; bench/warm.py times those).
    os.environ["KDEBUG_WARM"] = "0"
    kernel = find_kernel(release=args.release)
    env_release = ["--release", kernel.release]
    ours = build_initramfs(load_recipe("busybox"), kernel, kdump=False).path
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        before = None
        if args.before:
            from bench.before import checkout, env_for

            tree = stack.enter_context(checkout(args.before))
            before = (tree, env_for(tree))
        minimal = minimal_initramfs(Path(tmp))
        minimal_mb = minimal.stat().st_size / 1e6
        peer, bare_ours = bare_argv(kernel, minimal), bare_argv(kernel, ours)
        profile = load_profile()
        peer_params = bare_argv(kernel, minimal, tuple(profile.cmdline))
        firmware = find_firmware(profile.firmware, shutil.which("qemu-system-x86_64"))
        peer_firmware = peer_params + (["-bios", str(firmware)] if firmware else [])
        kd = [sys.executable, "-m", "kdebug.cli.main", "run", *env_release, "--", "true"]
        time_until(peer, PEER_READY, "stdout")  # warm the page cache
        time_whole(kd)
        if before:
            time_whole(kd, where=before)  # builds its initramfs
        rows: dict[str, list[float]] = {"bare QEMU, minimal busybox initramfs": [],
                                        "same, kdebug's kernel parameters": [],
                                        "same, and kdebug's firmware": [],
                                        "bare QEMU, kdebug's initramfs": [],
                                        "kdebug run -- true, to guest ready": [],
                                        "kdebug run -- true, whole command": []}
        for _ in range(args.n):
            rows["bare QEMU, minimal busybox initramfs"].append(time_until(peer, PEER_READY, "stdout"))
            rows["same, kdebug's kernel parameters"].append(time_until(peer_params, PEER_READY, "stdout"))
            rows["same, and kdebug's firmware"].append(time_until(peer_firmware, PEER_READY, "stdout"))
            rows["bare QEMU, kdebug's initramfs"].append(time_until(bare_ours, READY, "stdout"))
            rows["kdebug run -- true, to guest ready"].append(time_until(kd, b"guest ready", "stderr"))
            rows["kdebug run -- true, whole command"].append(time_whole(kd))
            if before:
                rows.setdefault(f"  at {args.before}, to guest ready", []).append(
                    time_until(kd, b"guest ready", "stderr", where=before))
                rows.setdefault(f"  at {args.before}, whole command", []).append(time_whole(kd, where=before))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"kernel {kernel.release}, kdebug initramfs {ours.stat().st_size / 1e6:.1f} MB, "
          f"minimal {minimal_mb:.1f} MB, {args.n} rounds (TCG)")
    base = statistics.median(rows["bare QEMU, minimal busybox initramfs"])
    for name, xs in rows.items():
        m = statistics.median(xs)
        print(f"{name:40} median {m:5.2f} s  ratio {m / base:5.2f}  ({', '.join(f'{x:.2f}' for x in xs)})")


if __name__ == "__main__":
    main()
