"""gdb driven through its machine interface (pygdbmi): the API's and the
tests' way to run gdb. Control goes through MI (async: continue, interrupt,
wait for a stop), data walks stay in gdb-Python (the kd- commands), whose
console output comes back as MI stream records. Every call has a timeout."""

from __future__ import annotations

import itertools
import time

from kdebug.attach.runner import check_gdb
from kdebug.errors import DebuggerError


def mi_quote(text: str) -> str:
    """A C string for an MI argument."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class GdbMI:
    """One gdb process started from ``argv`` (a :func:`kdebug.attach.plan.gdb_argv`
    list, without -batch); its -ex commands have run when the constructor returns."""

    def __init__(self, argv: list[str], timeout: float = 300.0) -> None:
        from pygdbmi.gdbcontroller import GdbController

        check_gdb(argv[0])
        if "-batch" in argv:
            raise DebuggerError("an MI-driven gdb runs without -batch")
        self._tokens = itertools.count(1)
        self._pending: list[dict] = []  # records read while waiting for something else
        try:
            self._gdb = GdbController([argv[0], "--interpreter=mi3", "-iex", "set mi-async on", *argv[1:]],
                                      time_to_check_for_additional_output_sec=0.01)
        except (OSError, ValueError) as e:
            raise DebuggerError(f"cannot start gdb: {e}") from None
        #: What gdb printed while it ran its startup (-ex) commands.
        self.startup = self._command("-list-features", timeout)[0]

    # --- the MI exchange --------------------------------------------------------

    def _read(self, timeout: float) -> list[dict]:
        try:
            return self._gdb.get_gdb_response(timeout_sec=timeout, raise_error_on_timeout=False)
        except Exception as e:  # pygdbmi raises its own types when gdb died
            raise DebuggerError(f"gdb stopped answering: {e}") from None

    def _command(self, mi: str, timeout: float) -> tuple[str, dict]:
        """Send one MI command; return (console text it printed, its result record)."""
        token = next(self._tokens)
        try:
            self._gdb.write(f"{token}{mi}", read_response=False)
        except Exception as e:
            raise DebuggerError(f"gdb is gone: {e}") from None
        console: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rec in self._read(0.2):
                if rec.get("type") in ("console", "target") and isinstance(rec.get("payload"), str):
                    console.append(rec["payload"])
                elif rec.get("type") == "result" and rec.get("token") == token:
                    if rec.get("message") == "error":
                        msg = (rec.get("payload") or {}).get("msg", "error")
                        raise DebuggerError(f"gdb: {msg}")
                    return "".join(console), rec
                else:
                    self._pending.append(rec)
        raise DebuggerError(f"gdb did not finish {mi!r} within {timeout:g} s")

    # --- what callers use ---------------------------------------------------------

    def execute(self, command: str, timeout: float = 120.0) -> str:
        """Run a CLI command (e.g. ``kd-ps --json``); return what it printed."""
        return self._command(f"-interpreter-exec console {mi_quote(command)}", timeout)[0]

    def cont(self) -> None:
        """Let the target run (returns at once: MI is asynchronous)."""
        self._pending.clear()
        self._command("-exec-continue", 30)

    def interrupt(self, timeout: float = 60.0) -> dict:
        """Stop a running target; return the stop record."""
        self._command("-exec-interrupt", 30)
        return self.wait_stopped(timeout)

    def wait_stopped(self, timeout: float = 60.0) -> dict:
        """Wait for the target to stop (a breakpoint, a signal); return the record's payload."""
        deadline = time.monotonic() + timeout
        while True:
            for i, rec in enumerate(self._pending):
                if rec.get("type") == "notify" and rec.get("message") == "stopped":
                    del self._pending[: i + 1]
                    return rec.get("payload") or {}
            if time.monotonic() > deadline:
                raise DebuggerError(f"the target did not stop within {timeout:g} s")
            self._pending += self._read(0.2)

    def output_since(self) -> str:
        """Console text gdb printed while the target ran (breakpoint commands, kd-break)."""
        self._pending += self._read(0.05)
        text = "".join(r["payload"] for r in self._pending
                       if r.get("type") in ("console", "target") and isinstance(r.get("payload"), str))
        return text

    def close(self) -> None:
        try:
            self.execute("kd-detach-now", timeout=10)
        except DebuggerError:
            pass
        try:
            self._gdb.exit()
        except Exception:
            pass

    def __enter__(self) -> GdbMI:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
