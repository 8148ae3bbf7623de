"""kdebug capture, kdebug snapshot."""

from __future__ import annotations

from pathlib import Path

import click

from kdebug.capture.record import Capture
from kdebug.cli.options import (
    capture_options,
    launch_options,
    pass_kw,
    session_options,
    to_capture_options,
    to_launch_options,
)
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
        how = "took a QEMU dump of the guest as it is" if cap.splat else "used the QEMU dump instead"
        lines.insert(0, f"kdebug: {cap.fallback}; {how}")
    for m in cap.modules:
        lines.append(f"kdebug: module {m['name']} kept as {m['file']} (build-id {m['build_id'] or 'none'}) "
                     "for the report's file:line")
    if cap.tainted:
        lines.append(f"kdebug: note: {cap.tainted}")
    return "\n".join(lines)


def _explain(e: CaptureError) -> None:
    """The error, its diagnoses and where the evidence is; then exit 1 (74: an output fault)."""
    said = str(e)  # a stage's wrapped error already starts with its name
    said = said if said.startswith(f"{e.failed_stage}: ") else f"{e.failed_stage}: {said}"
    click.echo(f"kdebug: error: stage {said}", err=True)
    for d in e.diagnoses[1:]:
        click.echo(f"kdebug:   also: {d.cause} (fix: {d.fix})", err=True)
    if e.diagnoses and e.diagnoses[0].evidence:
        click.echo(f"kdebug:   console: {e.diagnoses[0].evidence[:300]}", err=True)
    if e.directory:
        if (e.directory / "vmcore").exists():  # whole, but it lacks kernel data (the verify stage)
            click.echo(f"kdebug:   the dump is kept as {e.directory}/vmcore; a report on it says what it lacks",
                       err=True)
        elif (e.directory / "capture.json").exists():
            partial = (e.directory / "vmcore.partial").exists()
            kept = "; the incomplete dump is kept as vmcore.partial" if partial else ""
            click.echo(f"kdebug:   logs and capture.json in {e.directory} (no vmcore there{kept})", err=True)
    raise click.exceptions.Exit(e.exit_status)  # 74 for an output fault (kdebug.errors)


@click.command()
@launch_options
@capture_options(default_method="kdump")
@click.option("--out", "-o", type=click.Path(path_type=Path),
              help="Output directory (default: a new kdebug-capture-* directory here).")
@pass_kw
def capture(kw):
    """Crash a guest and bring its vmcore home.

    Boots the kernel with crashkernel= (default 128M), loads a capture kernel
    with kexec -p, crashes the guest with --trigger (or --run CMD), lets the
    capture kernel stream makedumpfile's output over a virtio-serial port,
    and checks the dump is complete. The directory holds vmcore (0600), the
    console logs of both kernels and capture.json; its path is printed last.

    An Oops panics the guest (panic_on_oops, the kdump convention);
    --panic-on adds warn, hung, lockup or oom ('none': nothing does). When
    the kernel reports an Oops, a WARNING or a sanitizer finding and goes on,
    kdebug stops at once and names the --panic-on that would have captured
    it (--method auto dumps the guest as it is instead). A --run command
    that ends without crashing anything is reported with its status and
    last output. Modules given with --add are kept beside the dump, so the
    report shows their functions' files and lines.

    Example: kdebug capture --trigger oops --out /tmp/oops

    Example: kdebug capture --add m.ko:/m.ko --run 'insmod /m.ko' --panic-on warn
    """
    from kdebug.capture.api import capture as run_capture

    opts = to_capture_options(kw, kw.pop("out"))
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
