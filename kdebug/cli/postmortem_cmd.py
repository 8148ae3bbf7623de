"""kdebug postmortem (one vmcore -> report) and kdebug triage (a directory).

The post-mortem stacks load only when a command runs, and only the one it
takes: a tier-0 report (--no-debuginfo) needs neither the drgn collectors,
crash, nor the debuginfod client's progress drawing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from kdebug.errors import UsageError
from kdebug.output import write_file
from kdebug.report.render import FORMATS


def _write(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
    else:
        # Whole or not at all: a full or read-only disk is one line (exit 74)
        # and a report that was there before is kept.
        write_file(output, text, mode=0o644, what=f"the report {output.name}")
        click.echo(f"kdebug: wrote {output}", err=True)


@click.command()
@click.argument("vmcore", type=click.Path(path_type=Path))
@click.option("--vmlinux", type=click.Path(path_type=Path), help="Debug vmlinux (default: found by build-id).")
@click.option("--tree", type=click.Path(path_type=Path), help="Kernel build tree with vmlinux and modules.")
@click.option("--module-dir", "module_dirs", type=click.Path(path_type=Path), multiple=True, metavar="DIR",
              help="Out-of-tree modules (.ko with debug info, or .ko.debug) under DIR: each is used for "
                   "the loaded module with its build-id, for file:line in its frames.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the report to FILE.")
@click.option("--no-crash", is_flag=True, help="drgn only: skip crash and the cross-check.")
@click.option("--crash-timeout", default=120.0, show_default=True, help="Seconds crash may run.")
@click.option("--no-debuginfo", is_flag=True,
              help="Tier 0: report from the dump alone (VMCOREINFO, kallsyms, log, saved registers), as "
                   "when no debug vmlinux can be found.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def postmortem(vmcore, vmlinux, tree, module_dirs, fmt, as_json, output, no_crash, crash_timeout, no_debuginfo,
               quiet):
    """Turn a vmcore (ELF, kdump-compressed or flattened) into a report.

    VMCORE is a dump file, or a directory holding one dump at any depth: a
    `kdebug capture` directory, kdump-tools' <stamp>/dump.<stamp> (Debian,
    Ubuntu) or RHEL's <host>-<date>/vmcore. When the dump's own log is
    unreadable, the dmesg saved beside it serves as the log. The vmlinux is
    found by the build-id in the dump's VMCOREINFO; when none can be had
    (or with --no-debuginfo) the report is tier 0, made from the dump alone,
    and its first line says what it lacks and which package gives it. Out-of-tree modules a
    capture was given are found beside it (modules/) or where they were
    added from; --module-dir DIR names more. The JSON schema is
    kdebug/report/schema/report-v1.json.

    Example: kdebug postmortem /var/crash/202401011200 --format html -o report.html
    """
    from kdebug.report.render import render

    t0 = time.monotonic()

    def progress(msg: str) -> None:
        if not quiet:
            click.echo(f"kdebug: [{time.monotonic() - t0:5.1f} s] {msg}", err=True)

    if no_debuginfo:
        from kdebug.postmortem.tier0 import postmortem_nodebug

        # drgn's plugins (its commands, a user's debug-info finders) serve nothing
        # a report without debug info reads; finding them costs 0.1-0.3 s
        # (importlib.metadata's entry points) at the first Program. A user's setting wins.
        os.environ.setdefault("DRGN_DISABLE_PLUGINS", "*")
        report = postmortem_nodebug(vmcore, progress=progress)
    else:
        from kdebug.cli.fetch import fetch_progress
        from kdebug.postmortem.build import postmortem as run

        report = run(vmcore, vmlinux=vmlinux, tree=tree, crash=not no_crash, crash_timeout=crash_timeout,
                     progress=progress, module_dirs=module_dirs, fetch_progress=fetch_progress(quiet))
    progress(f"done: {report.signature}")
    _write(render(report, "json" if as_json else fmt), output)


@click.command()
@click.argument("directory", type=click.Path(path_type=Path), required=False)
@click.option("-j", "--jobs", default=2, show_default=True, help="Dumps analysed at once (locally).")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds per dump.")
@click.option("--json", "as_json", is_flag=True, help="JSON output (same as --format json).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True,
              help="Output format; html is for --summary.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the summary to FILE.")
@click.option("--no-crash", is_flag=True, help="drgn only (faster).")
@click.option("--vmlinux", type=click.Path(path_type=Path), help="Use this vmlinux for every dump.")
@click.option("--db", metavar="PATH|URL",
              help="Crash database (SQLite file, or postgresql://...): skip dumps it holds, record the rest.")
@click.option("--broker", metavar="URL", help="Send each dump to `kdebug worker`s through this Redis broker.")
@click.option("--summary", is_flag=True, help="With --db: signatures by count, first/last seen, releases.")
@click.option("--no-debuginfo", is_flag=True, help="Tier 0 for every dump: no debug info is looked for.")
def triage(directory, jobs, timeout, as_json, fmt, output, no_crash, vmlinux, db, broker, summary, no_debuginfo):
    """Analyse every vmcore under DIRECTORY in parallel and group them by signature.

    Dumps are found at any depth: `kdebug capture` directories, kdump-tools'
    <stamp>/dump.<stamp> (Debian, Ubuntu), RHEL's <host>-<date>/vmcore, and
    any other dump file. A dump that is bad or takes longer than --timeout is
    listed with its error; the others go on. Exits 1 when any dump failed.

    With --db, dumps already in the crash database (by content) are not
    analysed again, and every new report is recorded. With --broker, the
    dumps go to a queue per kernel release, analysed by `kdebug worker`s.
    --summary prints the database's signatures (--format html writes a page
    and, beside it in FILE.reports/, the reports it links to).

    Example: kdebug triage /var/crash --db crashes.sqlite --broker redis://127.0.0.1:6379/0
    """
    fmt = "json" if as_json else fmt
    if summary and not db:
        raise UsageError("--summary reads the crash database: give --db")
    if fmt == "html" and not summary:
        raise UsageError("--format html is for --summary")
    if directory is None and not summary:
        raise UsageError("give a DIRECTORY of dumps (or --db ... --summary)")
    if directory is not None:
        entries = _triage_run(directory, jobs, timeout, no_crash, vmlinux, db, broker, not no_debuginfo)
        if not summary:
            from kdebug.report.triage import triage_json, triage_text

            _write(triage_json(entries) if fmt == "json" else triage_text(entries), output)
            if not all(e.ok for e in entries):
                raise click.exceptions.Exit(1)
            return
    _summary(db, fmt, output)


def _triage_run(directory, jobs, timeout, no_crash, vmlinux, db, broker, debuginfo=True):
    from kdebug.postmortem.triage import TriageOptions
    from kdebug.vmcore.layouts import find_dumps

    dumps = find_dumps(directory)
    if not dumps:
        raise UsageError(f"no dumps in {directory} (looked for kdebug capture directories, kdump-tools "
                         "<stamp>/dump.<stamp>, RHEL <host>-<date>/vmcore and dump files, at any depth)")
    options = TriageOptions(vmlinux=vmlinux, crash=not no_crash, debuginfo=debuginfo)
    where = f"through {broker}" if broker else f"{jobs} at a time"
    click.echo(f"kdebug: triage of {len(dumps)} dumps, {where}", err=True)

    def progress(e):
        click.echo(f"kdebug: {e.path}: {e.signature if e.ok else f'FAILED: {e.error}'}", err=True)

    if not db and not broker:  # the plain local run, unchanged
        from kdebug.postmortem.triage import triage as run

        return run(dumps, jobs=jobs, timeout=timeout, options=options, progress=progress)
    from kdebug.fleet.run import fleet_triage

    queue = None
    if broker:  # celery: the optional fleet extra, loaded only with a broker
        from kdebug.fleet.queue import connect

        queue = connect(broker)
    res = fleet_triage(dumps, db=db, queue=queue, jobs=jobs, timeout=timeout, options=options,
                       progress=progress)
    if db:
        click.echo(f"kdebug: {res.analysed} analysed, {res.known} already known, "
                   f"{res.recorded} recorded in {db}", err=True)
    return res.entries


def _summary(db, fmt, output):
    from kdebug.fleet.run import db_summary
    from kdebug.fleet.summary import summary_html, summary_json, summary_text

    pages = db_summary(db, with_reports=fmt == "html" and output is not None)
    if fmt == "json":
        _write(summary_json(pages.groups, db), output)
    elif fmt == "text":
        _write(summary_text(pages.groups, db), output)
    else:
        if output is None:
            raise UsageError("--format html writes a page and its reports: give -o FILE")
        reports = output.with_name(output.name + ".reports")
        _write(summary_html(pages.groups, db, reports.name), output)
        reports.mkdir(mode=0o700, exist_ok=True)  # reports quote guest memory (log, tasks)
        for name, page in pages.reports.items():
            (reports / name).write_text(page)
        click.echo(f"kdebug: wrote {len(pages.reports)} reports in {reports}", err=True)


COMMANDS = [postmortem, triage]
