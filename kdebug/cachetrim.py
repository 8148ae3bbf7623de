"""A cap on the caches whose entries a run names by what it was given
(temporary paths, a dump's path and mtime): without one they grow with every
run. Least recently used first; an entry's files share the name before its
first dot (``busybox-KEY.img`` with ``busybox-KEY.json``), and a hit marks the
entry used by touching it (``used``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

#: Each trimmed cache's cap (MiB), and its environment override.
CAPS_MB = {"initramfs": 1024, "vmcores": 4096}
CAP_ENV = "KDEBUG_CACHE_CAP_MB"
#: A file still being written (``*.tmp``, ``*.part``) is left alone for this long.
WRITING_GRACE = 3600.0


def evictions(entries: list[tuple[str, float, int]], cap_bytes: int, keep: str | None = None) -> list[str]:
    """Keys to delete so the entries fit in ``cap_bytes``, least recently
    used first. ``entries``: (key, last use, bytes on disk); ``keep``: the
    entry just made, never evicted for its own sake."""
    total = sum(b for _, _, b in entries)
    out = []
    for key, _, size in sorted(entries, key=lambda e: e[1]):
        if total <= cap_bytes:
            break
        if key == keep:
            continue
        out.append(key)
        total -= size
    return out


def env_cap_bytes(name: str, default_mb: int) -> int:
    """A cache's cap: environment variable ``name`` in MiB, else ``default_mb``."""
    try:
        mb = int(os.environ.get(name, default_mb))
    except ValueError:
        mb = default_mb
    return max(mb, 0) << 20


def cap_bytes(kind: str) -> int:
    """``kind``'s cap: KDEBUG_CACHE_CAP_MB (one figure for every trimmed cache) or its default."""
    return env_cap_bytes(CAP_ENV, CAPS_MB[kind])


def used(path: Path) -> None:
    """Mark a cache hit: the entry is the most recently used."""
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only cache still serves


def entry_key(name: str) -> str:
    return name.split(".", 1)[0]


def trim(directory: Path, cap: int, keep: Path | None = None) -> list[str]:
    """Delete ``directory``'s least recently used entries past ``cap`` bytes;
    the keys removed. ``keep``: a file of the entry just made."""
    groups: dict[str, tuple[float, int, list[Path]]] = {}
    now = time.time()
    try:
        files = list(directory.iterdir())
    except OSError:
        return []
    for p in files:
        try:
            st = p.lstat()
        except OSError:
            continue  # removed by another kdebug meanwhile
        if not p.is_file() or (p.suffix in (".tmp", ".part") and now - st.st_mtime < WRITING_GRACE):
            continue
        last, size, paths = groups.get(entry_key(p.name), (0.0, 0, []))
        groups[entry_key(p.name)] = (max(last, st.st_mtime), size + st.st_blocks * 512, [*paths, p])
    doomed = evictions([(k, last, size) for k, (last, size, _) in groups.items()], cap,
                       entry_key(keep.name) if keep is not None else None)
    for k in doomed:
        for p in groups[k][2]:
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass  # a cache this user cannot write: it still served, and the next trim tries again
    return doomed
