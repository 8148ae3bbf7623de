from __future__ import annotations

import click

from kdebug.cli.options import kernel_options, pass_kw
from kdebug.doctor import collect_doctor, format_doctor
from kdebug.kernel import find_kernel


@click.command()
@kernel_options
@pass_kw
def doctor(kw):
    """Check host tools, the accelerator, the kernel/vmlinux pair and kernel features.

    Example: kdebug doctor --tree ~/linux
    """
    report = collect_doctor(lambda: find_kernel(kw["kernel"], kw["vmlinux"], kw["tree"]))
    click.echo(format_doctor(report))
    if not report.ok:
        raise click.exceptions.Exit(1)
