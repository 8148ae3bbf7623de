"""kdebug worker: a Celery worker that analyses the dumps `kdebug triage --broker` queues."""

from __future__ import annotations

import click


@click.command()
@click.option("--broker", required=True, metavar="URL", help="Redis broker, e.g. redis://HOST:6379/0.")
@click.option("-c", "--concurrency", default=1, show_default=True, help="Dumps analysed at once.")
@click.option("--release", "releases", multiple=True, metavar="RELEASE",
              help="Take dumps of this kernel release (repeatable; default: every release whose debug "
                   "vmlinux is in /usr/lib/debug/boot).")
@click.option("--name", help="Worker name (default kdebug-PID@HOST).")
@click.option("--max-memory", default=4096, show_default=True, metavar="MiB",
              help="A pool process above this after a dump is replaced by a fresh one.")
@click.option("--redeliver-after", default=3600.0, show_default=True, metavar="SECONDS",
              help="A dump whose worker vanished goes back to the queue after this long; keep it above "
                   "triage's --timeout.")
def worker(broker, concurrency, releases, name, max_memory, redeliver_after):
    """Analyse dumps from the broker's queues until stopped (Ctrl-C, SIGTERM).

    Run it on any machine that can read the dumps (same path, shared or
    copied) and has the debug info of their kernel releases. It subscribes to
    one queue per release (kdebug.<release>) plus kdebug.any for dumps that
    do not name theirs.

    Example: kdebug worker --broker redis://10.0.0.5:6379/0 --concurrency 2
    """
    from kdebug.errors import UsageError
    from kdebug.fleet.queue import ANY_QUEUE, queue_for, run_worker
    from kdebug.fleet.releases import debug_releases

    releases = list(releases) or debug_releases()
    if not releases:
        raise UsageError("no debug vmlinux in /usr/lib/debug/boot, so no release to take dumps of",
                         hint="install linux-image-<release>-dbg, or name releases with --release")
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    queues = [queue_for(r) for r in releases] + [ANY_QUEUE]
    click.echo(f"kdebug: worker for {', '.join(releases)} on {broker}, {concurrency} at a time", err=True)
    run_worker(broker, concurrency=concurrency, queues=queues, name=name, max_memory_mb=max_memory,
               redeliver_after=redeliver_after)


COMMANDS = [worker]
