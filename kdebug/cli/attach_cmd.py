"""kdebug attach."""

from __future__ import annotations

from pathlib import Path

import click

from kdebug.cli.options import launch_options, pass_kw, session_options, to_launch_options, warm_options

_path = click.Path(path_type=Path)


@click.command()
@launch_options
@session_options
@click.option("--freeze", is_flag=True, help="Stop at the first instruction (implies --nokaslr).")
@click.option("--break", "breaks", multiple=True, metavar="PRESET",
              help="Arm a kd-break preset: boot, panic, module, 'syscall NAME', 'sched PID'.")
@click.option("--ex", "commands", multiple=True, metavar="CMD", help="Run this gdb command (repeatable).")
@click.option("-x", "files", type=_path, multiple=True, metavar="FILE", help="Run gdb commands from FILE.")
@click.option("--source", "source_dirs", type=_path, multiple=True, help="Kernel source directory for gdb.")
@click.option("--kgdb", is_flag=True, help="Through the kernel's KGDB on a second serial port (no gdbstub).")
@click.option("--batch", is_flag=True, help="Run the commands and exit (no prompt); the guest stops too.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the guest's shell.")
@warm_options
@pass_kw
def attach(kw):
    """Boot a guest and debug its kernel in gdb, symbols loaded (KASLR too).

    The guest boots to its shell, stops, and gdb connects with kdebug's kd-
    commands loaded (`help user-defined`). When gdb exits the guest is gone.

    Example: kdebug attach --batch --ex kd-ps --ex 'kd-dmesg --tail 5'
    """
    from kdebug.attach.flow import attach_new, attach_session
    from kdebug.attach.plan import AttachOptions
    from kdebug.session import pick_session

    s = pick_session(kw.pop("session_name"), kw.pop("last"))
    a = AttachOptions(session=s.name if s else None, batch=kw.pop("batch"),
                      commands=list(kw.pop("commands")), files=list(kw.pop("files")),
                      breaks=list(kw.pop("breaks")), source_dirs=list(kw.pop("source_dirs")),
                      boot_timeout=kw.pop("timeout"), kgdb=kw.pop("kgdb"), cold=kw.pop("cold"),
                      reseed=kw.pop("reseed"))
    freeze = kw.pop("freeze")

    def echo(msg):
        click.echo(msg, err=True)

    if a.session:
        raise click.exceptions.Exit(attach_session(a.session, a, echo))
    if a.kgdb:
        from kdebug.attach.flow import attach_kgdb

        raise click.exceptions.Exit(attach_kgdb(to_launch_options(kw, freeze=freeze), a, echo))
    raise click.exceptions.Exit(attach_new(to_launch_options(kw, freeze=freeze), a, echo))


COMMANDS = [attach]
