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


#: Where distributions install debug info (``/usr/lib/debug/boot/vmlinux-R``,
#: ``lib/modules/R``, ``.build-id/xx/yyyy.debug``).
DEFAULT_DEBUG_DIRS = ("/usr/lib/debug",)


def debug_dirs() -> tuple[Path, ...]:
    """The machine's debug directories kdebug (and the drgn it drives)
    searches: ``KDEBUG_DEBUG_DIRS`` (':'-separated; set but empty: none,
    which hides the machine's debug info from kdebug), else /usr/lib/debug."""
    value = os.environ.get("KDEBUG_DEBUG_DIRS")
    if value is None:
        return tuple(Path(d) for d in DEFAULT_DEBUG_DIRS)
    return tuple(Path(d) for d in value.split(":") if d)


def debuginfo_cache() -> Path:
    """kdebug's cache of debug files fetched by build-id (a ``.build-id``
    tree). Not created here: a cache that cannot be created is said when a
    download needs it."""
    return Path(os.environ.get("KDEBUG_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kdebug") / "debuginfo"


#: Where kdebug looks for a host tool after its own builds and PATH (setup and
#: users install tools in any of them; PATH may lack the sbin ones).
SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def tools_dir() -> Path:
    """kdebug's own builds of host tools, one prefix per tool and source version:
    ``tools/<name>-<version>/bin/<name>`` (scripts/setup.d makes them)."""
    return cache_dir("tools")


def built_tools(name: str) -> list[Path]:
    """kdebug's builds of ``name``, the most recently installed first."""
    found = [p for p in tools_dir().glob(f"{name}-*/bin/{name}") if _executable(p)]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def tool_candidates(name: str) -> list[Path]:
    """Every executable ``name`` on this host, in kdebug's order of preference:
    kdebug's builds, then PATH, then the usual system directories. One entry
    per file (a /bin -> /usr/bin symlink does not list a binary twice)."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    paths = [*built_tools(name), *(Path(d) / name for d in (*dirs, *SEARCH_PATH))]
    seen: set[Path] = set()
    out = []
    for p in paths:
        if not _executable(p):
            continue
        real = p.resolve()
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out


def find_tool(name: str) -> Path | None:
    """The ``name`` kdebug uses on this host: the first of :func:`tool_candidates`."""
    found = tool_candidates(name)
    return found[0] if found else None


def _executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)
