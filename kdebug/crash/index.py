"""A copy of a vmlinux with a .gdb_index section, for crash.

crash reads the vmlinux's DWARF with the gdb inside it, without gdb's index
cache; on a Debian -dbg vmlinux (590 MB) that is most of its start-up. With
the index in the file (gdb-add-index, on a copy: the original belongs to its
package) crash starts in about half the time (10.8 -> 5.8 s measured on the
6.1 cloud kernel). The copy keeps the build-id, so pairing is unchanged; it
is cached by build-id and made by setup (scripts/setup.d) or on demand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

from kdebug.elf import file_build_id
from kdebug.paths import cache_dir


def indexed_path(vmlinux: Path) -> Path | None:
    """Where the indexed copy of ``vmlinux`` lives (None without a build-id,
    or when it is no readable ELF: crash then says what is wrong with it)."""
    try:
        bid = file_build_id(vmlinux)
    except (OSError, ValueError):
        return None
    return cache_dir("crash-vmlinux") / f"{bid}.vmlinux" if bid else None


def for_crash(vmlinux: Path) -> Path:
    """The indexed copy when it exists, else ``vmlinux`` itself."""
    p = indexed_path(vmlinux)
    return p if p is not None and p.is_file() else vmlinux


def make_indexed(vmlinux: Path, timeout: float = 900.0) -> Path | None:
    """Make the indexed copy (a no-op when it exists); None when gdb-add-index
    is missing or fails, and crash then reads the original."""
    target = indexed_path(vmlinux)
    if target is None or target.is_file():
        return target
    tool = shutil.which("gdb-add-index")
    if tool is None:
        return None
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        with open(vmlinux, "rb") as src, open(tmp, "wb") as dst:
            size = os.fstat(src.fileno()).st_size
            done = 0
            while done < size:
                n = os.copy_file_range(src.fileno(), dst.fileno(), size - done)
                if n <= 0:
                    break
                done += n
        r = subprocess.run([tool, str(tmp)], capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0 or file_build_id(tmp) != file_build_id(vmlinux):
            return None
        tmp.replace(target)
        return target
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        tmp.unlink(missing_ok=True)


def index_ahead(vmlinux: Path) -> threading.Thread | None:
    """Make the indexed copy in a thread (the copy and gdb-add-index run
    outside the GIL) when it is missing: a first run on a fresh cache starts
    it while the guest boots, and crash reads it once it is there. None when
    there is nothing to make."""
    target = indexed_path(vmlinux)
    if target is None or target.is_file() or shutil.which("gdb-add-index") is None:
        return None
    t = threading.Thread(target=make_indexed, args=(vmlinux,), name="kdebug-crash-index", daemon=True)
    t.start()
    return t
