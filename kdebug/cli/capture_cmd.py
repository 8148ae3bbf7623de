"""kdebug capture, kdebug snapshot."""

from __future__ import annotations

from pathlib import Path

import click

from kdebug.capture.plan import COMPRESSIONS, METHODS, CaptureOptions, Timeouts
from kdebug.capture.record import Capture
from kdebug.capture.triggers import TRIGGERS
from kdebug.cli.options import launch_options, pass_kw, session_options, to_launch_options
from kdebug.errors import CaptureError


def _summary(cap: Capture) -> str:
    stages = ", ".join(f"{s.name} {s.seconds:.1f}s" for s in cap.stages)
    size = cap.sizes.get("vmcore", 0)
    lines = [f"kdebug: {cap.method} capture of {cap.kernel.get('release')} ({cap.trigger}): "
             f"{cap.format} vmcore, {size / 1e6:.1f} MB in {cap.seconds or 0:.1f} s",
             f"kdebug: stages: {stages}"]
    if cap.dump_filter:
        lines.append(f"kdebug: dump level {cap.dump_filter['reason']}")
    if cap.fallback:
        lines.insert(0, f"kdebug: {cap.fallback}; used the QEMU dump instead")
    if cap.tainted:
        lines.append(f"kdebug: note: {cap.tainted}")
    return "\n".join(lines)


def _explain(e: CaptureError) -> None:
    """The error, its diagnoses and where the evidence is; then exit 1."""
    click.echo(f"kdebug: error: stage {e.failed_stage}: {e}", err=True)
    for d in e.diagnoses[1:]:
        click.echo(f"kdebug:   also: {d.cause} (fix: {d.fix})", err=True)
    if e.diagnoses and e.diagnoses[0].evidence:
        click.echo(f"kdebug:   console: {e.diagnoses[0].evidence[:300]}", err=True)
    if e.directory:
        if (e.directory / "vmcore").exists():  # whole, but it lacks kernel data (the verify stage)
            click.echo(f"kdebug:   the dump is kept as {e.directory}/vmcore; a report on it says what it lacks",
                       err=True)
        else:
            partial = (e.directory / "vmcore.partial").exists()
            kept = "; the incomplete dump is kept as vmcore.partial" if partial else ""
            click.echo(f"kdebug:   logs and capture.json in {e.directory} (no vmcore there{kept})", err=True)
    raise click.exceptions.Exit(1)


@click.command()
@launch_options
@click.option("--method", type=click.Choice(METHODS), default="kdump", show_default=True,
              help="kdump (kexec a capture kernel), qemu (pvpanic + QMP dump), "
                   "auto (kdump, else the QEMU dump).")
@click.option("--trigger", type=click.Choice(list(TRIGGERS)), default="sysrq", show_default=True,
              help="How to crash the guest.")
@click.option("--run", "run_cmd", metavar="CMD", help="Run this reproducer in the guest instead of a trigger.")
@click.option("--setup", multiple=True, metavar="CMD",
              help="Guest shell command run after boot, before the capture kernel is loaded.")
@click.option("--dump-level", "-d", type=click.IntRange(0, 31), default=None,
              help="makedumpfile -d: pages to leave out. Default: 31 (all but kernel data) less "
                   "what this makedumpfile cannot filter safely on this kernel.")
@click.option("--compress", type=click.Choice(COMPRESSIONS), default="lzo", show_default=True,
              help="Page compression of the kdump-compressed vmcore.")
@click.option("--via", type=click.Choice(["serial", "disk"]), default="serial", show_default=True,
              help="serial: stream over a virtio-serial port; disk: write the vmcore file on an "
                   "ext4 disk image, read back with debugfs without mounting.")
@click.option("--raw", is_flag=True, help="Unfiltered ELF vmcore (cat /proc/vmcore): large, slower.")
@click.option("--out", "-o", type=click.Path(path_type=Path),
              help="Output directory (default: a new kdebug-capture-* directory here).")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds for the first boot.")
@click.option("--panic-timeout", type=float, help="Seconds from trigger to panic (default: per trigger).")
@click.option("--capture-timeout", default=120.0, show_default=True,
              help="Seconds for the capture kernel to start dumping.")
@click.option("--dump-timeout", default=300.0, show_default=True, help="Seconds for the dump itself.")
@pass_kw
def capture(kw):
    """Crash a guest and bring its vmcore home.

    Boots the kernel with crashkernel= (default 128M), loads a capture kernel
    with kexec -p, crashes the guest with --trigger (or --run CMD), lets the
    capture kernel stream makedumpfile's output over a virtio-serial port,
    and checks the dump is complete. The directory holds vmcore (0600), the
    console logs of both kernels and capture.json; its path is printed last.

    Example: kdebug capture --trigger oops --out /tmp/oops
    """
    from kdebug.capture.api import capture as run_capture

    opts = CaptureOptions(
        method=kw.pop("method"), trigger=kw.pop("trigger"), run=kw.pop("run_cmd"),
        dump_level=kw.pop("dump_level"), compression=kw.pop("compress"), raw=kw.pop("raw"),
        via=kw.pop("via"),
        out=kw.pop("out"), setup=tuple(kw.pop("setup")),
        timeouts=Timeouts(boot=kw.pop("timeout"), panic=kw.pop("panic_timeout"),
                          capture_boot=kw.pop("capture_timeout"), dump=kw.pop("dump_timeout")))
    if opts.method == "kdump" and not kw.get("crashkernel"):
        kw["crashkernel"] = "auto"
    base = to_launch_options(kw)
    try:
        cap = run_capture(base, opts, say=lambda m: click.echo(f"kdebug: {m}", err=True))
    except CaptureError as e:
        _explain(e)
    click.echo(_summary(cap), err=True)
    click.echo(str(cap.directory))


@click.command()
@launch_options
@session_options
@click.option("--run", "run_cmd", metavar="CMD", help="Boot a fresh guest, run CMD, then dump it.")
@click.option("--stay-stopped", is_flag=True, help="Leave a session's guest paused after the dump.")
@click.option("--out", "-o", type=click.Path(path_type=Path),
              help="Output directory (default: a new kdebug-snapshot-* directory here).")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds for a fresh guest to boot.")
@pass_kw
def snapshot(kw):
    """Dump the memory of a live (or hung) guest without crashing it.

    With --session/--last: QMP stop, dump-guest-memory (ELF) and cont. Without:
    boot a fresh guest (optionally run --run CMD), dump it and stop it.

    Example: kdebug snapshot --last --out /tmp/hung
    """
    from kdebug.capture.api import snapshot as run_snapshot

    name, last, run = kw.pop("session_name"), kw.pop("last"), kw.pop("run_cmd")
    resume, out, timeout = not kw.pop("stay_stopped"), kw.pop("out"), kw.pop("timeout")
    try:
        cap = run_snapshot(to_launch_options(kw), session_name=name, use_session=last, out=out,
                           run=run, resume=resume, boot_timeout=timeout)
    except CaptureError as e:
        _explain(e)
    click.echo(_summary(cap), err=True)
    click.echo(str(cap.directory))


COMMANDS = [capture, snapshot]
