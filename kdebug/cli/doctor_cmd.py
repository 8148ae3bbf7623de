from __future__ import annotations

import json
from pathlib import Path

import click

from kdebug.cli.fetch import fetch_progress
from kdebug.cli.options import kernel_options, pass_kw
from kdebug.doctor import collect_doctor, collect_dump_doctor, dump_doctor_dict, format_doctor, format_dump_doctor
from kdebug.kernel import find_kernel


@click.command()
@click.argument("dump", type=click.Path(path_type=Path), required=False)
@kernel_options
@click.option("--fetch", is_flag=True, help="With DUMP: download what a debuginfod server has (into the cache).")
@click.option("--module-dir", "module_dirs", type=click.Path(path_type=Path), multiple=True, metavar="DIR",
              help="With DUMP: out-of-tree modules' files under DIR.")
@click.option("--json", "as_json", is_flag=True, help="With DUMP: the pieces as JSON.")
@pass_kw
def doctor(kw):
    """Check host tools, the accelerator, the kernel/vmlinux pair and kernel features.

    With DUMP (a vmcore, a capture directory or a machine's dump directory):
    where the vmlinux and each loaded module's debug info come from, or
    would come from: --vmlinux, the capture's record, the debug directories
    (KDEBUG_DEBUG_DIRS, default /usr/lib/debug), kdebug's build trees and
    cache, a debuginfod server (DEBUGINFOD_URLS); and what is missing.

    Example: kdebug doctor --tree ~/linux

    Example: DEBUGINFOD_URLS=http://debuginfod.example:8002 kdebug doctor /var/crash/202401011200 --fetch
    """
    dump, fetch, module_dirs, as_json = kw.pop("dump"), kw.pop("fetch"), kw.pop("module_dirs"), kw.pop("as_json")
    if dump is not None:
        report = collect_dump_doctor(dump, vmlinux=kw["vmlinux"], tree=kw["tree"], fetch=fetch,
                                     progress=fetch_progress(), module_dirs=module_dirs)
        click.echo(json.dumps(dump_doctor_dict(report), indent=1) if as_json else format_dump_doctor(report))
        if not report.ok:
            raise click.exceptions.Exit(1)
        return
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
