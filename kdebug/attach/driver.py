"""gdb under pexpect for tests and benchmarks: one command at a time."""

from __future__ import annotations

import os
import re
import time

import pexpect

from kdebug.attach.runner import check_gdb
from kdebug.errors import DebuggerError


class GdbDriver:
    """gdb under pexpect, one command at a time (tests and the benchmark).

    Each command is followed by an ``echo`` of a unique marker so that its
    output is exactly what came before the marker.
    """

    def __init__(self, argv: list[str], timeout: float = 300.0) -> None:
        check_gdb(argv[0])
        self._seq = 0
        self.child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", codec_errors="replace",
                                   timeout=timeout, echo=False, dimensions=(200, 1000),
                                   env={**os.environ, "TERM": "dumb"})
        self.child.delaybeforesend = None  # pexpect's default 50 ms per line would dominate timings
        self.startup = self._until_marker(timeout)

    def _until_marker(self, timeout: float) -> str:
        self._seq += 1
        tag = f"__KDGDB_{os.getpid()}_{self._seq}__"
        self.child.sendline(f"echo {tag}\\n")
        try:
            self.child.expect(re.compile(rf"(?<!echo ){tag}\r?\n"), timeout=timeout)
        except pexpect.TIMEOUT:
            raise DebuggerError(f"gdb did not answer within {timeout:g} s") from None
        except pexpect.EOF:
            raise DebuggerError("gdb exited: " + (self.child.before or "")[-500:]) from None
        return self.child.before.replace("\r\n", "\n").replace("\r", "")

    def run(self, command: str, timeout: float = 120.0) -> str:
        """Output of one gdb command (prompts removed)."""
        self.child.sendline(command)
        out = self._until_marker(timeout)
        return re.sub(r"^\(gdb\) ?", "", out, flags=re.M).strip("\n")

    def timed(self, command: str, timeout: float = 300.0) -> tuple[str, float]:
        t0 = time.monotonic()
        out = self.run(command, timeout)
        return out, time.monotonic() - t0

    def close(self) -> None:
        if self.child.isalive():
            try:
                self.child.sendline("kd-detach-now")
                self.child.sendline("quit")
                self.child.expect([pexpect.EOF], timeout=10)
            except Exception:
                pass
        self.child.close(force=True)

    def __enter__(self) -> GdbDriver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
