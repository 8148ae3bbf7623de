"""kdebug crash-loop: boot, crash, capture and report in one command."""

from __future__ import annotations

import time
from pathlib import Path

import click

from kdebug.cli.options import capture_options, launch_options, pass_kw, to_capture_options, to_launch_options
from kdebug.cli.postmortem_cmd import _write
from kdebug.report.render import FORMATS


@click.command("crash-loop")
@launch_options
@capture_options(default_method="qemu")
@click.option("--out", type=click.Path(path_type=Path), help="Capture directory (default: a new one here).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Format of the final report (with -o; the terminal gets text).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the final report to FILE.")
@click.option("--no-crash", is_flag=True, help="drgn only: skip crash and the cross-check.")
@pass_kw
def crash_loop(kw):
    """Boot, crash, capture and report in one command.

    Prints each stage as it ends, the drgn report as soon as it is ready, then
    crash's cross-check when crash finishes.

    Takes capture's options: --trigger or --run CMD (with --add HOST:GUEST,
    --module), --setup, --panic-on, the dump settings. Modules given with
    --add get their files and lines in the report.

    Example: kdebug crash-loop --trigger oops --method kdump

    Example: kdebug crash-loop --add m.ko:/m.ko --run 'insmod /m.ko'
    """
    from kdebug.crashloop import crash_loop as run
    from kdebug.report.render import CRASH_SECTIONS, render, render_text

    opts = to_capture_options(kw, kw.pop("out"))
    fmt, output, no_crash = kw.pop("fmt"), kw.pop("output"), kw.pop("no_crash")
    t0 = time.monotonic()

    def say(msg: str) -> None:
        click.echo(f"kdebug: [{time.monotonic() - t0:5.1f} s] {msg}", err=True)

    def partial(report) -> None:
        say(f"drgn report ready: {report.signature}" + ("" if no_crash else " (crash still running)"))
        click.echo(render_text(report))

    loop = run(to_launch_options(kw), opts, crash=not no_crash, say=say, on_partial=partial)
    if not no_crash:
        # The drgn report is on screen already: what crash added, from the same record.
        click.echo(render_text(loop.report, sections=CRASH_SECTIONS), nl=False)
    say(f"report saved: {loop.capture.directory}/report.json, report.html")
    if output is not None:
        _write(render(loop.report, fmt), output)


COMMANDS = [crash_loop]
