"""Entry point: the command group and the one place errors become exit codes."""

from __future__ import annotations

import importlib
import os
import signal
import sys

import click

from kdebug import __version__
from kdebug.errors import BootError, KdebugError

#: kdebug's own failure in `kdebug run`, distinct from the guest command's status.
EXIT_KDEBUG = 125


class _Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP, raised so that every cleanup (QEMU included) runs."""


def _on_signal(signum, frame):
    raise _Terminated()


#: Each command's module, imported only when that command runs: `kdebug run`
#: then starts without the post-mortem, fleet and shell stacks (~0.06 s).
COMMAND_MODULES = {
    "run": "launch_cmds", "boot": "launch_cmds", "sessions": "launch_cmds",
    "attach": "attach_cmd", "kernel": "kernel_cmd",
    "capture": "capture_cmd", "snapshot": "capture_cmd",
    "postmortem": "postmortem_cmd", "triage": "postmortem_cmd", "crash-loop": "crashloop_cmd",
    "shell": "shell_cmd", "worker": "fleet_cmd",
    "doctor": "doctor_cmd", "initramfs": "initramfs_cmd", "bisect": "bisect_cmd",
    "cache": "cache_cmd",
}


def command_from(module: str, name: str) -> click.Command:
    """The command ``name`` that ``kdebug.cli.<module>`` defines."""
    mod = importlib.import_module(f"kdebug.cli.{module}")
    return next(c for c in getattr(mod, "COMMANDS", ()) if c.name == name)


class KdebugGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx, name):
        module = COMMAND_MODULES.get(name)
        return command_from(module, name) if module else None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KdebugError as e:
            _report(e, ctx)
            ctx.exit(EXIT_KDEBUG if ctx.invoked_subcommand in ("run", "shell") else e.exit_status)
        except KeyboardInterrupt:
            click.echo("kdebug: interrupted; guest stopped", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as e:
            if _debug(ctx):
                raise
            click.echo(f"kdebug: internal error: {type(e).__name__}: {e} "
                       "(run with KDEBUG_DEBUG=1 for the traceback)", err=True)
            ctx.exit(1)


def _debug(ctx) -> bool:
    return bool(os.environ.get("KDEBUG_DEBUG")) or bool((ctx.obj or {}).get("verbose"))


def _report(e: KdebugError, ctx) -> None:
    click.echo(f"kdebug: error: {e}", err=True)
    if isinstance(e, BootError):
        for d in e.diagnoses[1:]:
            click.echo(f"  also: {d.cause} (fix: {d.fix})", err=True)
        if e.diagnoses and e.diagnoses[0].evidence:
            click.echo(f"  console: {e.diagnoses[0].evidence}", err=True)
        if e.log_path:
            click.echo(f"  console log: {e.log_path}", err=True)
    if _debug(ctx):
        import traceback

        traceback.print_exception(e, file=sys.stderr)


@click.group(cls=KdebugGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kdebug")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and more detail.")
@click.pass_context
def cli(ctx, verbose):
    """Linux kernel debugging one command away.

    Boot a kernel under QEMU, attach gdb, capture a vmcore with kdump and
    turn it into a report. Start with `kdebug doctor`, then `kdebug run -- uname -a`.
    """
    ctx.obj = {"verbose": verbose}


def main() -> None:  # noqa: D103
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    cli(prog_name="kdebug")


if __name__ == "__main__":
    main()
