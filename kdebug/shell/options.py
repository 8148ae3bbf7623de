"""What the three shells over one target (drgn, crash, gdb) share: their
options and how a debugger takes the terminal. Each shell is its own module
(drgn_shell, crash_shell, gdb_shell), so the CLI loads only the one it runs."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ShellOptions:
    code: str | None = None  # -c: run this and exit with its status
    script: Path | None = None  # --script FILE [ARGS...]
    args: tuple[str, ...] = ()
    commands: list[str] = field(default_factory=list)  # --ex (crash, gdb)
    files: list[Path] = field(default_factory=list)  # -x (gdb)
    batch: bool = False


def foreground(argv: list[str], *, batch: bool) -> int:
    """Run a debugger on this terminal; Ctrl-C is its own."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL if batch else None).returncode
    finally:
        signal.signal(signal.SIGINT, old)
        sys.stdout.flush()
