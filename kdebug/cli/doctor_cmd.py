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
    if kw["kernel"] or kw["vmlinux"] or kw["tree"] or kw["release"]:
        # A kernel the user named must exist: that is an error, not a table row.
        kernel = find_kernel(kw["kernel"], kw["vmlinux"], kw["tree"], kw["release"])
        report = collect_doctor(lambda: kernel)
    else:
        report = collect_doctor(find_kernel)
    click.echo(format_doctor(report))
    if not report.ok:
        raise click.exceptions.Exit(1)


COMMANDS = [doctor]
