"""Guest RAM shared with the host: gdb reads it straight from the file
(kd-memory), the fast read path."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from kdebug.decode.physmap import shared_ram_args


def ram_file_path(session) -> Path:
    """Where the guest RAM of ``session`` lives: /dev/shm when there is one."""
    shm = Path("/dev/shm")
    return (shm if shm.is_dir() and os.access(shm, os.W_OK) else session.dir) / f"kdebug-{session.name}.ram"


def share_ram(plan, path: Path):
    """``plan`` (a LaunchPlan) with its RAM in ``path``, created private (0600)
    before QEMU opens it: it is the guest's whole memory."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, plan.memory_mb << 20)
    finally:
        os.close(fd)
    return dataclasses.replace(plan, extra_args=tuple(plan.extra_args) + shared_ram_args(str(path), plan.memory_mb))


def hold_ram_file(path: Path, qemu_pid: int, timeout: float = 15.0) -> Path:
    """Keep the RAM file open here and unlink it once QEMU has mapped it: no
    copy of guest memory outlives us, even after kill -9. gdb opens it
    through our fd's /proc path."""
    fd = os.open(path, os.O_RDONLY)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if str(path) in Path(f"/proc/{qemu_pid}/maps").read_text():
                path.unlink(missing_ok=True)
                break
        except OSError:
            break
        time.sleep(0.05)
    return Path(f"/proc/{os.getpid()}/fd/{fd}")
