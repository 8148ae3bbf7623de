"""A flattened vmcore (makedumpfile -F, the stream a dump is sent as) made
into a kdump-compressed file the engines read, in kdebug's cache.

Its own module, light to import: the tier-0 report reassembles without the
debug-info search (kdebug.vmcore.locate) and what that loads."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from kdebug.cachetrim import cap_bytes, trim, used
from kdebug.errors import ToolMissing, VmcoreError
from kdebug.paths import cache_dir, find_tool


def reassemble(path: Path, timeout: float = 300.0) -> Path:
    """``makedumpfile -R`` a flattened stream into the cache (once per file)."""
    mdf = find_tool("makedumpfile")  # kdebug's own (setup) first
    if mdf is None:
        raise ToolMissing("makedumpfile is needed to reassemble a flattened vmcore",
                          hint="apt-get install makedumpfile")
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    out = cache_dir() / "vmcores" / f"{key}.kdump"
    if out.is_file():
        used(out)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    tmp.unlink(missing_ok=True)
    try:
        with open(path, "rb") as src:
            res = subprocess.run([str(mdf), "-R", str(tmp)], stdin=src, capture_output=True,
                                 text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        tmp.unlink(missing_ok=True)
        raise VmcoreError(f"makedumpfile -R did not finish within {timeout:g} s on {path}") from None
    if res.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        last = (res.stderr or res.stdout).strip().splitlines()
        raise VmcoreError(f"cannot reassemble flattened vmcore {path}: {last[-1] if last else res.returncode}")
    tmp.replace(out)
    trim(out.parent, cap_bytes("vmcores"), keep=out)  # keyed by path and mtime: a new entry per dump
    return out
