"""kdebug run, kdebug boot, kdebug sessions."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time

import click

from kdebug.cli.options import launch_options, pass_kw, to_launch_options, warm_options
from kdebug.errors import UsageError
from kdebug.guest.qemu import _die_with_parent
from kdebug.plan.argv import build_argv
from kdebug.plan.diagnose import diagnose
from kdebug.plan.prepare import Prepared, prepare
from kdebug.session import list_sessions, new_session
from kdebug.warm.interactive import start_interactive
from kdebug.warm.start import WarmStart, add_files, late_files, start_guest


def _announce(p: Prepared, session_name: str | None) -> None:
    k = p.kernel
    parts = [f"kernel {k.release} ({k.source})", f"accel {p.accel.name}"]
    if p.plan.gdb_port:
        parts.append(f"gdb 127.0.0.1:{p.plan.gdb_port}")
    if session_name:
        parts.append(f"session {session_name}")
    click.echo("kdebug: " + ", ".join(parts), err=True)
    if p.accel.name == "tcg" and "falling back" in p.accel.reason:
        click.echo(f"kdebug: {p.accel.reason}", err=True)
    for w in (p.initramfs.warnings if p.initramfs else []):
        click.echo(f"kdebug: warning: {w}", err=True)


def _dry_run(kw: dict, **extra) -> bool:
    if not kw.pop("dry_run", False):
        return False
    prep = prepare(to_launch_options(kw, **extra), None)
    click.echo(shlex.join(build_argv(prep.plan)))
    return True


@click.command(context_settings={"ignore_unknown_options": False})
@launch_options
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for the guest to boot.")
@click.option("--cmd-timeout", default=60.0, show_default=True, help="Seconds the command may run.")
@click.option("--keep", is_flag=True, help="Keep the session directory (console log) afterwards.")
@click.option("--dry-run", is_flag=True, help="Print the QEMU command line and exit.")
@warm_options
@click.argument("command", nargs=-1, required=True)
@pass_kw
def run(kw):
    """Boot a guest, run COMMAND in its shell, print the output, power off.

    Exits with the command's exit status (125 when kdebug itself fails).
    COMMAND is joined with spaces and run by the guest's shell, as ssh does.

    Example: kdebug run -- 'grep "Crash kernel" /proc/iomem' --crashkernel 128M
    """
    command = " ".join(kw.pop("command"))
    timeout, cmd_timeout, keep = kw.pop("timeout"), kw.pop("cmd_timeout"), kw.pop("keep")
    cold, reseed = kw.pop("cold"), kw.pop("reseed")
    if _dry_run(kw):
        return
    session = new_session()
    ok = False
    try:
        lopts = to_launch_options(kw)
        late, why = late_files(lopts, cold)
        prep = prepare(lopts, session)
        _announce(prep, None)
        # No vmlinux: a run never needs the state's KASLR offset (attach saves its own states).
        warm = WarmStart(prep.plan, release=prep.kernel.release, vmlinux=None,
                         enabled=not cold and why is None, reseed=reseed)
        if why:
            warm.notes.append(why)
        with start_guest(warm, session, timeout) as guest:
            for n in warm.notes:
                click.echo(f"kdebug: {n}", err=True)
            click.echo(f"kdebug: guest ready in {guest.boot_seconds:.1f} s ({warm.line})", err=True)
            for w in guest.warnings:
                click.echo(f"kdebug: warning: {w.cause} (fix: {w.fix})", err=True)
            if late:
                add_files(guest, late)
            res = guest.run(command, timeout=cmd_timeout)
            sys.stdout.write(res.output)
            sys.stdout.flush()
            click.echo(f"kdebug: exit status {res.status}", err=True)
            guest.poweroff()
        ok = True
    finally:
        log = session.console_log
        if (ok and not keep) or not log.exists() or log.stat().st_size == 0:
            session.remove()
        else:
            click.echo(f"kdebug: console log kept in {log}", err=True)
    raise click.exceptions.Exit(res.status)


@click.command("boot")
@launch_options
@click.option("--freeze", is_flag=True, help="Stop at the first instruction (attach gdb to go on).")
@click.option("--name", help="Session name (default: generated).")
@click.option("--dry-run", is_flag=True, help="Print the QEMU command line and exit.")
@warm_options
@pass_kw
def boot_cmd(kw):
    """Boot a guest with its console on this terminal (Ctrl-A x quits).

    The guest is recorded as a session, so `kdebug attach` finds it. The
    first boot of a guest is saved at its ready line (the console pauses
    ~1 s); later boots restore it (`--cold` boots).

    Example: kdebug boot --crashkernel 128M
    """
    freeze, name, cold = kw.pop("freeze"), kw.pop("name"), kw.pop("cold")
    if kw.pop("reseed"):
        raise UsageError("--reseed needs a shell kdebug drives; in `kdebug boot` the shell is yours "
                         "(write fresh bytes to /dev/urandom there, or boot with --cold)")
    if _dry_run(kw, interactive=True, freeze=freeze):
        return
    session = new_session(name)
    proc = None
    try:
        prep = prepare(to_launch_options(kw, interactive=True, freeze=freeze), session)
        _announce(prep, session.name)
        click.echo("kdebug: console follows; Ctrl-A x quits, Ctrl-A c toggles the QEMU monitor",
                   err=True)
        warm = WarmStart(prep.plan, release=prep.kernel.release, vmlinux=prep.kernel.vmlinux,
                         enabled=not cold, reseed=False)

        def popen(argv):
            try:
                return subprocess.Popen(argv, preexec_fn=_die_with_parent)
            except FileNotFoundError:
                raise UsageError(f"{argv[0]} not found (run scripts/setup.sh)") from None

        proc, saver = start_interactive(warm, session, popen)
        argv = proc.args
        if warm.kind == "warm":
            behind = time.time() - warm.record.saved
            click.echo(f"kdebug: {warm.line}: the shell is at its prompt (press Enter); its wall clock is "
                       f"the saved one, {behind:.0f} s behind (set it: date -s @EPOCH, EPOCH from the host's date +%s)",
                       err=True)
        session.qemu_pid = proc.pid
        session.argv = argv
        session.cmdline = prep.plan.cmdline
        session.gdb_port = prep.plan.gdb_port
        session.accel = prep.plan.accel
        session.save()
        rc = proc.wait()
        if saver is not None:
            saver.join(5)
        for n in warm.notes:
            click.echo(f"kdebug: {n}", err=True)
        log = session.console_log.read_text(errors="replace") if session.console_log.exists() else ""
        diags = diagnose(log, expect_crashkernel="crashkernel=" in prep.plan.cmdline)
        if diags and "kdebug-init: ready" not in log:
            click.echo(f"\nkdebug: boot failed: {diags[0].cause}\n  fix: {diags[0].fix}", err=True)
            rc = rc or 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        session.remove()
    raise click.exceptions.Exit(rc)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def sessions(as_json):
    """List running kdebug guests."""
    import json

    live = list_sessions()
    if as_json:
        click.echo(json.dumps([{"name": s.name, "qemu_pid": s.qemu_pid, "gdb_port": s.gdb_port,
                                "qmp": str(s.qmp_socket), "console_log": str(s.console_log),
                                "kernel": s.kernel.get("release"), "accel": s.accel}
                               for s in live], indent=2))
        return
    if not live:
        click.echo("no running kdebug guests")
        return
    from tabulate import tabulate

    click.echo(tabulate([(s.name, s.qemu_pid, s.gdb_port or "-", s.kernel.get("release", "?"),
                          time.strftime("%H:%M:%S", time.localtime(s.started))) for s in live],
                        headers=["session", "qemu pid", "gdb port", "kernel", "started"]))


COMMANDS = [run, boot_cmd, sessions]
