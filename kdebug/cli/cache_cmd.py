"""kdebug cache: the saved guests warm starts restore (kdebug.warm)."""

from __future__ import annotations

import json

import click
from tabulate import tabulate

from kdebug.warm import store
from kdebug.warm.key import stamp


def _rows(entries: list[store.Entry]) -> list[dict]:
    return [{"state": e.record.key, "stage": e.record.stage.split()[0], "release": e.record.release,
             "saved": e.record.saved, "used": e.record.used or None, "uses": e.record.uses,
             "kaslr_offset": e.record.kaslr_offset, "disk_bytes": e.disk_bytes(),
             "state_bytes": e.record.state_bytes, "qemu": e.record.qemu_version, "path": str(e.dir)}
            for e in entries]


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB"


@click.group("cache", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def cache(ctx, as_json):
    """List the saved guests (warm starts), with the disk each uses.

    The first run, attach or capture of a guest saves it; later ones with the
    same kernel, initramfs, command line, memory, CPUs, devices and QEMU
    restore it. The states use at most KDEBUG_WARM_CAP_MB (default 2048) MB;
    the least recently used go first.

    Example: kdebug cache; kdebug cache prune --all
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = _rows(store.entries())
    if as_json:
        click.echo(json.dumps({"states": rows, "cap_bytes": store.cap_bytes()}, indent=2))
        return
    if not rows:
        click.echo(f"no saved guests in {store.root()}")
        return
    click.echo(tabulate([(r["state"], r["stage"], r["release"], stamp(r["saved"]),
                          stamp(r["used"]) if r["used"] else "-", r["uses"], _mb(r["disk_bytes"]))
                         for r in rows],
                        headers=["state", "stage", "kernel", "saved", "last used", "uses", "on disk"]))
    total = sum(r["disk_bytes"] for r in rows)
    click.echo(f"\n{len(rows)} state(s), {_mb(total)} of {_mb(store.cap_bytes())} (KDEBUG_WARM_CAP_MB) "
               f"in {store.root()}")


@cache.command("prune")
@click.option("--all", "all_", is_flag=True, help="Remove every saved guest.")
@click.option("--cap", "cap_mb", type=click.IntRange(0), metavar="MB",
              help="Keep at most this many MB (default: KDEBUG_WARM_CAP_MB or 2048).")
def prune(all_, cap_mb):
    """Remove saved guests: the least recently used past the cap, or all."""
    gone = store.prune(cap=0 if all_ else (cap_mb << 20 if cap_mb is not None else None))
    for e in gone:
        click.echo(f"removed {e.record.key} ({e.record.stage.split()[0]}, {e.record.release})")
    click.echo(f"{len(gone)} state(s) removed")


COMMANDS = [cache]
