"""Where kdebug keeps caches and per-guest session directories."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kdebug.errors import UsageError


def cache_dir(*parts: str) -> Path:
    base = Path(os.environ.get("KDEBUG_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kdebug")
    d = base.joinpath(*parts)
    d.mkdir(parents=True, exist_ok=True)
    return d


def runtime_dir() -> Path:
    """Private (0700) directory for sessions: sockets and logs of running guests."""
    base = os.environ.get("KDEBUG_RUNTIME_DIR")
    if base:
        d = Path(base)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        d = Path(os.environ["XDG_RUNTIME_DIR"]) / "kdebug"
    else:
        d = Path(f"/tmp/kdebug-{os.getuid()}")
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = d.lstat()
    if st.st_uid != os.getuid() or not stat.S_ISDIR(st.st_mode):
        # someone else made it first (in a shared /tmp): never put sockets there
        raise UsageError(f"runtime directory {d} is not a directory owned by you",
                         hint="set KDEBUG_RUNTIME_DIR to a private directory")
    os.chmod(d, 0o700)
    return d
