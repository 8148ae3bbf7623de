"""Kernel sources for gdb's `list`: Debian's linux-source of exactly the
running kernel's package version, as `kdebug kernel build` unpacked it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from kdebug.paths import cache_dir


def _makefile_version(makefile: Path) -> str | None:
    try:
        head = makefile.read_text(errors="replace")[:600]
    except OSError:
        return None
    v = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL) = (\d+)", head, re.M))
    return f"{v['VERSION']}.{v['PATCHLEVEL']}.{v['SUBLEVEL']}" if len(v) == 3 else None


def distro_source_dir(release: str) -> Path | None:
    """Debian's linux-source of exactly this kernel's package version, as
    `kdebug kernel build` unpacked it (gdb then shows source lines)."""
    def version(pkg):
        try:
            r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                               text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    image = version(f"linux-image-{release}")
    if not image:
        return None
    major = ".".join(image.split(".")[:2])
    if version(f"linux-source-{major}") != image:
        return None
    upstream = image.split("-")[0].split("+")[0]
    for mk in sorted(cache_dir("kernels").glob(f"linux-source-{major}-*/src/Makefile")):
        if _makefile_version(mk) == upstream:
            return mk.parent
    return None
