"""The frame of every kd- command: argparse arguments, one-line errors, a
stopped target where one is needed, and registration, as a console command
(``kd-ps``: text) and, for those that collect records, as an MI command too
(``-kd-ps``: the records as an MI result, ``^done,records=[{pid="1",...}]``).

The MI twin takes the same arguments; its result is ``records`` (a list, or
one record for commands about one thing). MI carries every scalar as a
string: integers in decimal, booleans "true"/"false"; a field that is None
is left out. kdebug.attach.mi turns them back into kdebug.model's records.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex

import gdb

from kdebug.errors import KdebugError


def require_stopped() -> None:
    """One-line errors instead of tracebacks when there is nothing to read."""
    if gdb.selected_inferior().pid == 0 or gdb.selected_thread() is None:
        raise gdb.GdbError("not connected to a kernel (use `kdebug attach`, or `target remote HOST:PORT`)")
    if gdb.selected_thread().is_running():
        raise gdb.GdbError("the kernel is running: interrupt it first (Ctrl-C)")
    try:
        gdb.lookup_type("struct task_struct")
    except gdb.error:
        raise gdb.GdbError("no kernel symbols (use `kd-symbol-file VMLINUX --offset N`)") from None


class ArgParser(argparse.ArgumentParser):
    def error(self, message):
        raise gdb.GdbError(f"{self.prog}: {message}")

    def exit(self, status=0, message=None):
        if message:
            raise gdb.GdbError(message.strip())
        raise _HelpShown()


class _HelpShown(Exception):
    pass


class Command(gdb.Command):
    """Base of kd- commands. A command that collects records defines
    :meth:`records` (and :meth:`render` for its text) and gets an MI twin;
    one that only acts or prints defines :meth:`run`. It needs a stopped
    target unless ``needs_target`` is False."""

    name = ""
    needs_target = True

    def __init__(self):
        super().__init__(self.name, gdb.COMMAND_USER)
        self.parser = ArgParser(prog=self.name, description=(self.__doc__ or "").split("\n")[0],
                                add_help=True)
        self.arguments(self.parser)

    def arguments(self, p: ArgParser) -> None:
        pass

    def records(self, args):
        raise NotImplementedError

    def render(self, records, args) -> str | None:
        raise NotImplementedError

    def run(self, args) -> str | None:
        return self.render(self.records(args), args)

    def parse(self, argv: list[str]):
        """Arguments from argv, or None when --help was printed."""
        try:
            return self.parser.parse_args(argv)
        except _HelpShown:
            gdb.write(self.parser.format_help())
            return None

    def call(self, fn, args):
        """``fn(args)`` with the target checked and errors made one gdb line."""
        if self.needs_target:
            require_stopped()
        try:
            return fn(args)
        except KdebugError as e:
            raise gdb.GdbError(str(e)) from None
        except gdb.MemoryError as e:
            raise gdb.GdbError(f"{self.name}: {e}") from None

    def invoke(self, arg, from_tty):
        try:
            argv = shlex.split(arg)
        except ValueError as e:
            raise gdb.GdbError(f"{self.name}: {e}") from None
        args = self.parse(argv)
        if args is None:
            return
        out = self.call(self.run, args)
        if out:
            gdb.write(out if out.endswith("\n") else out + "\n")


def has_records(cls) -> bool:
    return getattr(cls, "records", None) is not Command.records


def to_mi(value):
    """A record (or list, dict, scalar) as an MI value (see the module's docstring)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: to_mi(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [to_mi(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


class MiCommand(gdb.MICommand):
    """``-kd-NAME ARGS``: a kd- command's records as an MI result; its errors
    as MI errors (``^error,msg="..."``)."""

    def __init__(self, command: Command):
        super().__init__("-" + command.name)
        self.command = command

    def invoke(self, argv):
        args = self.command.parse(list(argv))
        if args is None:
            raise gdb.GdbError(f"-{self.command.name}: --help is for the console command")
        return {"records": to_mi(self.command.call(self.command.records, args))}


def register(cls):
    """Class decorator: register a command (and its MI twin) or function."""
    instance = cls()
    if isinstance(instance, Command) and has_records(cls):
        MiCommand(instance)
    return cls
