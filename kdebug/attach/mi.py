"""gdb driven through its machine interface (pygdbmi): the API's and the
tests' way to run gdb. Control goes through MI (continue, wait for a stop),
data walks stay in gdb-Python (the kd- commands), whose console output comes
back as MI stream records. Every call has a timeout. The kd- commands that
collect records are MI commands too (``-kd-ps``, ``-kd-bt PID``, ...):
:meth:`GdbMI.records` takes their records from the MI result, and
:func:`mi_record` turns one into kdebug.model's dataclass.

MI runs synchronously and an interrupt is a SIGINT to gdb, as Ctrl-C on its
terminal: with `mi-async on`, once a Python breakpoint has said "don't stop"
(kd-symbols --follow on insmod) gdb takes the running target for stopped and
drops every later -exec-interrupt (measured with gdb 13.1)."""

from __future__ import annotations

import dataclasses
import itertools
import re
import signal
import time
import typing

from kdebug.attach.runner import check_gdb
from kdebug.errors import DebuggerError, GdbCommandError


def mi_quote(text: str) -> str:
    """A C string for an MI argument."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def mi_record(cls, data: dict):
    """A kdebug.model record from its MI form (gdb_scripts' kdgdb.command.to_mi:
    scalars as strings, booleans "true"/"false", None left out). Fields a
    newer gdb side adds are ignored."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = _mi_value(hints[f.name], data[f.name])
    return cls(**values)


def _mi_value(hint, value):
    if hint is bool:
        return value == "true"
    if hint is int:
        return int(value)
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return [_mi_value(item, v) for v in value]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) == 1:  # X | None: present means X
        return _mi_value(args[0], value)
    return value


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
        self._printed: list[str] = []  # what gdb printed since the last continue
        self._inbox: list[dict] = []  # read but not looked at yet
        try:
            self._gdb = GdbController([argv[0], "--interpreter=mi3", *argv[1:]],
                                      time_to_check_for_additional_output_sec=0.01)
        except (OSError, ValueError) as e:
            raise DebuggerError(f"cannot start gdb: {e}") from None
        #: What gdb printed while it ran its startup (-ex) commands.
        self.startup = self._command("-list-features", timeout)[0]

    # --- the MI exchange --------------------------------------------------------

    def _read(self, timeout: float) -> list[dict]:
        """Records not consumed yet (one read can bring several, and a command's
        result may come with what followed it), else what gdb sends next."""
        if self._inbox:
            out, self._inbox = self._inbox, []
            return out
        try:
            return self._gdb.get_gdb_response(timeout_sec=timeout, raise_error_on_timeout=False)
        except Exception as e:  # pygdbmi raises its own types when gdb died
            raise DebuggerError(f"gdb stopped answering: {e}") from None

    def _read_running(self, timeout: float) -> None:
        """Records while the target runs: printed text apart, the rest pending."""
        for rec in self._read(timeout):
            if rec.get("type") in ("console", "target") and isinstance(rec.get("payload"), str):
                self._printed.append(rec["payload"])
            else:
                self._pending.append(rec)

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
            records = self._read(0.2)
            for i, rec in enumerate(records):
                if rec.get("type") in ("console", "target") and isinstance(rec.get("payload"), str):
                    console.append(rec["payload"])
                elif rec.get("type") == "result" and rec.get("token") == token:
                    self._inbox = records[i + 1:] + self._inbox  # what came after is not this command's
                    if rec.get("message") == "error":
                        raise GdbCommandError((rec.get("payload") or {}).get("msg", "error"), command=mi)
                    return "".join(console), rec
                else:
                    self._pending.append(rec)
        raise DebuggerError(f"gdb did not finish {mi!r} within {timeout:g} s")

    # --- what callers use ---------------------------------------------------------

    def execute(self, command: str, timeout: float = 120.0) -> str:
        """Run a CLI command (e.g. ``kd-ps --json``); return what it printed."""
        return self._command(f"-interpreter-exec console {mi_quote(command)}", timeout)[0].strip("\n")

    def run(self, command: str, timeout: float = 120.0) -> str:
        """Like :meth:`execute`, but a command's error is its output, as on
        gdb's terminal (one line), instead of an exception."""
        try:
            return self.execute(command, timeout)
        except GdbCommandError as e:
            return e.gdb_message

    def records(self, command: str, *args: str | int, timeout: float = 120.0):
        """The records of a kd- command's MI twin: ``records("kd-ps", "--pid", 1)``
        runs ``-kd-ps --pid 1`` and returns its ``records`` result (MI values:
        see :func:`mi_record`). A gdb error raises :class:`GdbCommandError`."""
        argv = " ".join(mi_quote(str(a)) if re.search(r'[\s"\\]', str(a)) or not str(a) else str(a)
                        for a in args)
        name = command if command.startswith("-") else "-" + command
        _, rec = self._command(f"{name} {argv}".rstrip(), timeout)
        return (rec.get("payload") or {}).get("records")

    def wait_output(self, pattern: str, timeout: float = 120.0) -> re.Match:
        """Wait until what gdb printed while the target ran matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.output_since())
            if m:
                return m
            if time.monotonic() > deadline:
                raise DebuggerError(f"gdb did not print {pattern!r} within {timeout:g} s")

    def cont(self) -> None:
        """Let the target run; returns once gdb says it is running. Until it
        stops again, gdb reads no other command: wait, or interrupt."""
        self._pending.clear()
        self._printed.clear()
        self._command("-exec-continue", 30)

    def interrupt(self, timeout: float = 60.0) -> dict:
        """Stop a running target (SIGINT to gdb, as Ctrl-C); return the stop record."""
        self._gdb.gdb_process.send_signal(signal.SIGINT)
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
            self._read_running(0.2)

    def output_since(self) -> str:
        """What gdb printed since the last :meth:`cont` (breakpoint reports, kd-symbols)."""
        self._read_running(0.05)
        return "".join(self._printed)

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
