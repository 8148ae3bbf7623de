"""Download progress on stderr: one line redrawn on a terminal, a line at
the start and the end of each file otherwise (logs, CI)."""

from __future__ import annotations

import click

from kdebug.vmcore.debuginfod import FetchProgress, Progress


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f}"


def describe(p: FetchProgress) -> str:
    """One line for a download step."""
    pct = f" {100 * p.done // p.total}%" if p.total else ""
    resumed = f", resumed at {_mb(p.resumed_from)} MB" if p.resumed_from else ""
    verb = "fetched" if p.finished else "fetching"
    return (f"kdebug: debuginfod: {verb} {p.what} {_mb(p.done)}/{_mb(p.total)} MB{pct}, "
            f"{p.rate / 1e6:.0f} MB/s{resumed} ({p.url})")


def fetch_progress(quiet: bool = False) -> Progress | None:
    """A callback drawing downloads on stderr (None when ``quiet``)."""
    if quiet:
        return None
    tty = click.get_text_stream("stderr").isatty()
    started: set[str] = set()

    def show(p: FetchProgress) -> None:
        if tty:
            click.echo("\r\033[K" + describe(p), nl=p.finished, err=True)
        elif p.finished or p.build_id not in started:
            click.echo(describe(p), err=True)
        started.add(p.build_id)

    return show
