"""Writing kdebug's own output files, and what a write fault means.

A full disk, a read-only file system, a directory removed under us or an
I/O error at any write becomes one :class:`~kdebug.errors.OutputError`
line naming the fault, the place and the fix, never a traceback. A file is
written whole or not at all: into a temporary beside it, then renamed, so
a file that was there before is never lost to a write that failed.

The faults of a file another process writes (QEMU's dump stream) are seen
from outside: :func:`stalled_fault` tells why a growing file stopped.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from kdebug.errors import OutputError

#: errno -> how the fault reads in the one line, and its fix.
FAULTS = {
    errno.ENOSPC: ("no space left on {where}", "free space or choose --out elsewhere"),
    errno.EDQUOT: ("disk quota exceeded on {where}", "free space or choose --out elsewhere"),
    errno.EFBIG: ("file too large for the file system of {where}", "choose --out elsewhere"),
    errno.EROFS: ("{where} is on a read-only file system", "choose --out elsewhere"),
    errno.EACCES: ("{where} is not writable", "choose --out elsewhere"),
    errno.EPERM: ("{where} is not writable", "choose --out elsewhere"),
    errno.EIO: ("I/O error writing to {where} (a failing disk?)", "choose --out elsewhere; check dmesg"),
    errno.ENOENT: ("{where} was removed while kdebug wrote to it", "leave the output directory in place"),
    errno.ESTALE: ("{where} went away (stale file handle)", "choose --out elsewhere"),
}
#: Free space under which a file that stopped growing is taken as out of
#: space: QEMU writes the dump stream in 32 KiB pieces, a file system keeps
#: some blocks for its metadata.
LOW_SPACE = 1 << 20


def is_fault(e: BaseException) -> bool:
    """Whether ``e`` is a write fault of the place written (not a bug)."""
    return isinstance(e, OSError) and e.errno in FAULTS


def output_error(err: OSError | int, where: Path, *, what: str, need: int | None = None) -> OutputError:
    """The one line for a write fault at ``where`` while writing ``what``;
    ``need``: bytes the whole output would take, when known."""
    code = err if isinstance(err, int) else err.errno
    cause, fix = FAULTS.get(code, ("cannot write to {where}", "choose --out elsewhere"))
    msg = f"{cause.format(where=where)} while writing {what}"
    if need and code in (errno.ENOSPC, errno.EDQUOT):
        msg += f": it needs about {mb(need)} MB"
    if not isinstance(err, int) and code not in FAULTS:
        msg += f" ({err.strerror})"
    e = OutputError(msg, hint=fix)
    e.errno = code
    e.where = where
    return e


def mb(n: int) -> str:
    return f"{n / 1e6:.0f}" if n >= 10e6 else f"{n / 1e6:.1f}"


def free_bytes(path: Path) -> int:
    """Bytes this process may still write under ``path`` (root may use the reserve)."""
    st = os.statvfs(path)
    return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize


def read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def check_writable(directory: Path, *, what: str, need: int | None = None) -> None:
    """Refuse before any work a directory that cannot take ``what``
    (removed, read-only, or with less than ``need`` bytes free)."""
    try:
        if read_only(directory) or not os.access(directory, os.W_OK):
            raise output_error(errno.EROFS if read_only(directory) else errno.EACCES, directory, what=what)
        if need is not None and free_bytes(directory) < need:
            raise output_error(errno.ENOSPC, directory, what=what, need=need)
    except FileNotFoundError:
        raise output_error(errno.ENOENT, directory, what=what) from None


def stalled_fault(directory: Path, path: Path, inode: int | None) -> int | None:
    """Why a file another process writes into ``directory`` stopped growing,
    as an errno: the directory or the file was removed (ENOENT, ``inode``:
    the file's when it was created), the file system went read-only (EROFS)
    or is full (ENOSPC). None: no fault seen from here (a slow writer)."""
    try:
        if not directory.is_dir():
            return errno.ENOENT
        if inode is not None and path.stat().st_ino != inode:
            return errno.ENOENT
        if read_only(directory):
            return errno.EROFS
        if free_bytes(directory) < LOW_SPACE:
            return errno.ENOSPC
    except FileNotFoundError:
        return errno.ENOENT
    return None


def write_file(path: Path, data: str | bytes, *, mode: int = 0o600, what: str | None = None) -> Path:
    """Write ``path`` whole or not at all (a temporary beside it, fsynced,
    then renamed): on a fault the temporary is removed, a file that was
    there before is kept, and the fault is an OutputError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode(errors="replace") if isinstance(data, str) else data
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise output_error(e, path.parent, what=what or path.name, need=len(raw)) from None
    return path
