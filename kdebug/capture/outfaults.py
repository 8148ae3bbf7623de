"""A capture's output faults: the output directory full, read-only or
removed while the dump is written there (kdebug.output says each in one line).

QEMU writes the dump stream itself (a virtio-serial port backed by a file in
the output directory). When a write fails there it retries for ever: QEMU 10's
virtio-console throttles the port and waits for the file to take more, which
a full file system never does; the capture kernel's makedumpfile blocks on
the port, and no ``done`` comes. :class:`GrowthWatch` sees it from outside:
the file stops growing and its file system is full, read-only, or the file
is gone, and the capture stops at once instead of waiting out the dump timeout.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kdebug.errors import CaptureError, OutputError, UsageError
from kdebug.output import mb, output_error, stalled_fault
from kdebug.plan.diagnose import Diagnosis

#: Seconds a dump file may stand still, with a fault seen, before the
#: capture stops (a healthy stream grows every few milliseconds).
STALL = 2.0
#: capture.json's diagnosis code of each fault.
CODES = {errno.ENOSPC: "output-full", errno.EDQUOT: "output-full", errno.EFBIG: "output-full",
         errno.EROFS: "output-read-only", errno.EACCES: "output-read-only", errno.EPERM: "output-read-only",
         errno.ENOENT: "output-removed", errno.ESTALE: "output-removed", errno.EIO: "output-io"}


def capture_error(e: OutputError, *, evidence: str = "") -> CaptureError:
    """An output fault as the failure of the capture stage it happened in."""
    d = Diagnosis(CODES.get(e.errno or 0, "output-io"), e.message, e.hint or "", evidence)
    return CaptureError(e.message, hint=e.hint, diagnoses=[d], exit_status=e.exit_status)


def dump_fault(code: int, out: Path, *, written: int, need: int | None = None, what: str = "the dump",
               removed: bool = False) -> CaptureError:
    """The line for a dump cut by an output fault; ``written``: bytes that
    fit; ``need``: the dump's whole size when known (an ELF dump's)."""
    e = output_error(code, out, what=what, need=need)
    if need is None and code in (errno.ENOSPC, errno.EDQUOT):
        e.message += f": it needs more than the {mb(written)} MB that fit"
    if removed:
        e.message += f" (the cut dump, {mb(written)} MB, was removed to free the space)"
    return capture_error(e)


def allocated(path: Path) -> int:
    """Bytes a (possibly sparse) file holds on disk; -1 when it is gone."""
    try:
        return path.stat().st_blocks * 512
    except OSError:
        return -1


class GrowthWatch:
    """Whether a file another process writes has stopped for an output fault."""

    def __init__(self, path: Path, directory: Path) -> None:
        self.path, self.directory = path, directory
        try:
            self.inode: int | None = path.stat().st_ino
        except OSError:
            self.inode = None
        self.size = allocated(path)
        self.moved = time.monotonic()

    def fault(self) -> int | None:
        """The fault's errno once the file has stood still for STALL seconds
        with one seen; None while it grows or no fault is seen."""
        now, size = time.monotonic(), allocated(self.path)
        if size != self.size:
            self.size, self.moved = size, now
            return None
        if now - self.moved < STALL:
            return None
        return stalled_fault(self.directory, self.path, self.inode)


def remove_quietly(path: Path) -> bool:
    """Remove a file kdebug made; False when it could not be (read-only, gone)."""
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


@contextmanager
def claim_dir(out: Path) -> Iterator[None]:
    """One kdebug command at a time writes into ``out``: an exclusive flock
    on the directory itself (no lock file left behind; released when the
    process ends, however it ends). A second command is refused in one line."""
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"--out {out} is in use by another kdebug command",
                             hint="wait for it to finish, or choose another --out") from None
        yield
    finally:
        os.close(fd)
