#!/usr/bin/env python3
"""Fetch speed: kdebug's debuginfod client against a plain curl of the same
file from the same server, same run.

A real debuginfod (elfutils) in a private network namespace serves the
machine's -dbg vmlinux (-F, a symlink); each round, interleaved, curl writes
it to a file in the cache's file system and kdebug fetches it into an empty
cache (write, fsync, verify the ELF and its build-id, rename). Prints
medians in MB/s and kdebug's time as a ratio of curl's.

    .venv/bin/python bench/debuginfod.py [VMLINUX] [-n 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdebug.kernel import find_kernel, vmlinux_build_id  # noqa: E402
from tests.vmcore.debuginfod_server import Debuginfod, PrivateNet  # noqa: E402

#: Run inside the namespace: one kdebug fetch, its seconds as JSON.
FETCH = """
import json, sys, time
from pathlib import Path
from kdebug.vmcore.debuginfod import fetch
t0 = time.monotonic()
path, url = fetch(sys.argv[1], "vmlinux", (sys.argv[2],), Path(sys.argv[3]))
print(json.dumps({"seconds": time.monotonic() - t0, "size": path.stat().st_size}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmlinux", nargs="?")
    ap.add_argument("-n", type=int, default=5, help="rounds")
    args = ap.parse_args()
    vmlinux = Path(args.vmlinux) if args.vmlinux else find_kernel().vmlinux
    bid = vmlinux_build_id(vmlinux)
    tmp = Path(tempfile.mkdtemp(prefix="kdebug-bench-debuginfod-", dir=Path.home() / ".cache"))
    (tmp / "serve").mkdir()
    (tmp / "serve" / "vmlinux").symlink_to(vmlinux)
    net = PrivateNet()
    server = Debuginfod(net, tmp / "serve", tmp / "server")
    try:
        server.start(wait_for=(bid,))
        url = f"{server.url}/buildid/{bid}/debuginfo"
        curl_s, kd_s = [], []
        size = vmlinux.stat().st_size
        for i in range(args.n):
            out = tmp / f"curl-{i}"
            res = net.run(["curl", "-sf", "-o", str(out), "-w", "%{time_total}", url],
                          capture_output=True, text=True, check=True)
            curl_s.append(float(res.stdout))
            out.unlink()
            cache = tmp / f"cache-{i}"
            res = net.run([sys.executable, "-c", FETCH, bid, server.url, str(cache)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
            kd_s.append(json.loads(res.stdout)["seconds"])
            shutil.rmtree(cache)
    finally:
        server.stop()
        net.close()
        shutil.rmtree(tmp, ignore_errors=True)
    c, k = statistics.median(curl_s), statistics.median(kd_s)
    print(f"debuginfod fetch of {vmlinux.name} ({size / 1e6:.0f} MB), median of {args.n} rounds, loopback")
    print(f"{'curl -o FILE':34s} {size / c / 1e6:7.0f} MB/s  {c:6.2f} s")
    print(f"{'kdebug fetch (fsync + verify)':34s} {size / k / 1e6:7.0f} MB/s  {k:6.2f} s  ({k / c:.2f}x curl)")


if __name__ == "__main__":
    main()
