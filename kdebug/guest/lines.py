"""The host's side of a guest's serial lines (pexpect): the console is
QEMU's stdio, the shell's own line a unix socket QEMU serves
(LaunchPlan.shell_socket). Reading one line must never leave the other
unread for long: a guest whose port QEMU cannot empty stalls."""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path

import pexpect
import pexpect.fdpexpect
from pexpect.spawnbase import SpawnBase

#: The longest one line goes unread while kdebug waits on the other.
SLICE = 0.1


class Tee(io.StringIO):
    """Keeps everything pexpect read, for diagnosis and for callers."""


def connect(path: Path, child: pexpect.spawn, timeout: float = 10.0) -> socket.socket | None:
    """Connect to QEMU's socket for the shell's line: QEMU makes it before
    the guest starts. None when QEMU exits first (its error is on the
    console) or never makes it."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(path))
            return s
        except OSError:
            s.close()
            if not child.isalive() or time.monotonic() >= deadline:
                return None
            time.sleep(0.005)


def open_line(conn: socket.socket) -> SpawnBase:
    """A pexpect channel on a connected line, its text kept in a Tee."""
    line = pexpect.fdpexpect.fdspawn(conn.fileno(), encoding="utf-8", codec_errors="replace", timeout=30)
    line.delaybeforesend = None
    line.logfile_read = Tee()
    return line


def drain(line: SpawnBase) -> None:
    """Read what ``line`` holds now into its transcript (its buffer keeps it
    for a later expect)."""
    try:
        line.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0)
    except OSError:
        pass


def expect_reading(line: SpawnBase, other: SpawnBase, patterns: list, timeout: float) -> int:
    """``line.expect(patterns, timeout)`` that reads ``other`` between
    slices of at most SLICE seconds."""
    deadline = time.monotonic() + timeout
    wanted = [k for k, p in enumerate(patterns) if p is not pexpect.TIMEOUT]
    slice_ = [*(patterns[k] for k in wanted), pexpect.TIMEOUT]
    while True:
        i = line.expect(slice_, timeout=max(0.0, min(SLICE, deadline - time.monotonic())))
        if i < len(wanted):
            return wanted[i]
        drain(other)
        if time.monotonic() >= deadline:
            if pexpect.TIMEOUT in patterns:
                return patterns.index(pexpect.TIMEOUT)
            raise pexpect.TIMEOUT(f"no match within {timeout:g} s")
