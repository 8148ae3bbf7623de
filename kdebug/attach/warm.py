"""Prepare gdb for fast attaches (run by scripts/setup.d/gdb.sh): gdb's index
cache for a vmlinux, keyed by its build-id. Cold, the first type lookup in the
Debian vmlinux costs 15-50 s; with the cache ~1-8 s."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kdebug.crash.index import make_indexed
from kdebug.kernel import distro_kernels, vmlinux_build_id
from kdebug.paths import cache_dir


def index_file(build_id: str) -> Path:
    return cache_dir("gdb-index") / f"{build_id}.gdb-index"


def warm_index(vmlinux: Path, build_id: str | None, timeout: float = 900) -> bool:
    """Build the index cache entry unless it exists; True when it exists after."""
    if build_id and index_file(build_id).exists():
        return True
    d = cache_dir("gdb-index")
    subprocess.run(["gdb", "-nx", "-q", "-batch", "-iex", f"set index-cache directory {d}",
                    "-iex", "set index-cache enabled on", "-ex", f"file {vmlinux}",
                    "-ex", "ptype struct task_struct"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=timeout, check=False)
    return bool(build_id) and index_file(build_id).exists()


def main() -> int:
    """Warm the index of every installed distro kernel with its debug vmlinux
    (setup installs two generations; either may be attached)."""
    for release, _, vmlinux in distro_kernels():
        if vmlinux is None:
            continue
        ok = warm_index(vmlinux, vmlinux_build_id(vmlinux))
        print(f"setup: gdb index cache for {release}: {'ready' if ok else 'FAILED'}")
        made = "ready" if make_indexed(vmlinux) else "not made (crash reads the original)"
        print(f"setup: indexed vmlinux for crash, {release}: {made}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
