"""kdebug shell."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from kdebug.cli.options import pass_kw, session_options

_path = click.Path(path_type=Path)


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("target", type=_path, required=False)
@session_options
@click.option("--crash", "engine", flag_value="crash", help="crash instead of drgn (dumps only).")
@click.option("--gdb", "engine", flag_value="gdb", help="gdb with the kd- commands instead of drgn.")
@click.option("--drgn", "engine", flag_value="drgn", default=True, hidden=True)
@click.option("-c", "code", metavar="CODE", help="drgn: run CODE with prog and the helpers in scope, then exit.")
@click.option("--script", type=_path, metavar="FILE", help="drgn: run FILE the same way.")
@click.option("--ex", "commands", multiple=True, metavar="CMD", help="crash/gdb: run this command (repeatable).")
@click.option("-x", "files", type=_path, multiple=True, metavar="FILE", help="gdb: run commands from FILE.")
@click.option("--batch", is_flag=True, help="crash/gdb: run the commands and exit.")
@click.option("--vmlinux", type=_path, help="The dump's vmlinux (default: found by its build-id).")
@click.argument("args", nargs=-1)
@pass_kw
def shell(kw):
    """Open a dump or a running guest in drgn (default), crash or gdb.

    TARGET is a vmcore, a capture directory or a directory where a machine
    left its dumps (kdump-tools, RHEL); or name a running guest with
    --session NAME / --last. The vmlinux is found by build-id and module
    debug info is loaded. In drgn, `prog` is ready with drgn's Linux helpers
    and kdebug's kd_tasks(), kd_backtrace(pid), kd_log(), kd_modules().

    With -c or --script the exit status is the code's (1 if it raises);
    kdebug's own failures exit 125.

    Example: kdebug shell ./kdebug-capture-1 -c 'print(len(list(for_each_task(prog))))'
    """
    from kdebug.shell.options import ShellOptions
    from kdebug.shell.target import resolve_target

    engine = kw["engine"] or "drgn"
    if engine != "drgn" and (kw["code"] or kw["script"]):
        raise click.UsageError("-c/--script run drgn code; --ex runs crash or gdb commands")
    if engine == "drgn" and (kw["commands"] or kw["files"] or kw["batch"]):
        raise click.UsageError("--ex/-x/--batch are for --crash or --gdb; drgn takes -c or --script")
    if kw["code"] is not None and kw["script"] is not None:
        raise click.UsageError("give -c or --script, not both")
    if kw["args"] and kw["script"] is None:
        raise click.UsageError(f"unexpected arguments {' '.join(kw['args'])!r} (only --script takes arguments)")
    target = resolve_target(kw["target"], kw["session_name"], kw["last"], vmlinux=kw["vmlinux"])
    opts = ShellOptions(code=kw["code"], script=kw["script"], args=tuple(kw["args"]),
                        commands=list(kw["commands"]), files=list(kw["files"]), batch=kw["batch"])

    def say(msg: str) -> None:
        click.echo(msg, err=True)

    # Only the engine asked for is loaded: --crash starts without drgn, drgn without gdb's plans.
    module = importlib.import_module(f"kdebug.shell.{engine}_shell")
    raise click.exceptions.Exit(getattr(module, f"{engine}_shell")(target, opts, say))


COMMANDS = [shell]
