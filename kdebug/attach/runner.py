"""Run gdb in the foreground, the terminal its own."""

from __future__ import annotations

import shutil
import signal
import subprocess

from kdebug.attach.plan import GDB
from kdebug.errors import DebuggerError, ToolMissing


def check_gdb(gdb: str = GDB) -> None:
    if shutil.which(gdb) is None:
        raise ToolMissing(f"{gdb} not found", hint="apt-get install gdb (scripts/setup.sh)")


def run_gdb(argv: list[str], *, timeout: float | None = None, capture: bool = False) -> subprocess.CompletedProcess:
    """Run gdb in the foreground. Ctrl-C belongs to gdb (it interrupts the
    guest), so we ignore SIGINT meanwhile."""
    check_gdb(argv[0])
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        done = subprocess.run(argv, timeout=timeout, text=True,
                              capture_output=capture, stdin=subprocess.DEVNULL if capture else None)
        gdb_status(done.returncode)
        return done
    except subprocess.TimeoutExpired:
        raise DebuggerError(f"gdb did not finish within {timeout:g} s") from None
    finally:
        signal.signal(signal.SIGINT, old)


def gdb_status(returncode: int) -> int:
    """gdb's exit status; a gdb killed by a signal is kdebug's error (the
    guest is stopped with it, as on every exit path)."""
    if returncode < 0:
        name = signal.Signals(-returncode).name
        raise DebuggerError(f"gdb was killed by {name}", hint="the guest was stopped; run kdebug attach again")
    return returncode
