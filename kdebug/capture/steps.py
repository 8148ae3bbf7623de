"""Steps both capture methods take in a booted guest (adapter: drives the
console through :class:`kdebug.guest.qemu.Guest`, QMP for NMIs)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from kdebug.capture.module import trigger_module
from kdebug.capture.plan import DUMP_PORT, StageClock
from kdebug.capture.record import Capture
from kdebug.capture.triggers import MODULE_GUEST_PATH, Trigger
from kdebug.errors import CaptureError
from kdebug.guest.qemu import Guest, boot
from kdebug.kernel import Kernel
from kdebug.plan.cmdline import cmdline_value
from kdebug.plan.plan import SerialPort
from kdebug.plan.prepare import LaunchOptions, prepare
from kdebug.resources import launch_path
from kdebug.session import Session

HOOK = launch_path("triggers", "capture-hook.sh")
HOOK_GUEST_PATH = "etc/kdebug/init.d/50-capture"


def launch_options(base: LaunchOptions, kernel: Kernel, trigger: Trigger, *,
                   stream: Path | None = None, pvpanic: bool = False,
                   crashkernel: str | None = None, unsafe_crashkernel: str | None = None,
                   disk: Path | None = None) -> LaunchOptions:
    """``base`` plus what the capture needs: hook, trigger module, dump port or disk."""
    files = dict(base.extra_files)
    files[HOOK_GUEST_PATH] = HOOK
    if trigger.module:
        files[MODULE_GUEST_PATH.lstrip("/")] = trigger_module(kernel)
    ports = list(base.serial_ports)
    if stream is not None:
        ports.append(SerialPort(DUMP_PORT, stream))
    drives = list(base.drives) + ([disk] if disk is not None else [])
    append = list(base.append)
    if unsafe_crashkernel:
        # Past the CLI's 80M floor on purpose (fault tests): straight onto the cmdline.
        append.append(f"crashkernel={unsafe_crashkernel}")
        crashkernel = None
    return dataclasses.replace(base, extra_files=files, serial_ports=ports, pvpanic=pvpanic,
                               crashkernel=crashkernel, append=append, drives=drives,
                               gdb_port=0 if base.gdb_port is None else base.gdb_port)


def boot_recorded(lopts: LaunchOptions, session: Session, kernel: Kernel, cap: Capture,
                  clock: StageClock, timeout: float) -> Guest:
    """The prepare and boot stages every capture starts with; the guest's
    shape (memory, CPUs, crashkernel=, command line) goes into capture.json."""
    with clock.stage("prepare"):
        prep = prepare(lopts, session, resolve_kernel=lambda *a: kernel)
    plan = prep.plan
    cap.guest = {"memory_mb": plan.memory_mb, "cpus": plan.cpus,
                 "crashkernel": cmdline_value(plan.cmdline, "crashkernel")}
    cap.kernel["cmdline"] = plan.cmdline
    with clock.stage("boot"):
        return boot(plan, session, timeout=timeout)


def create_private(path: Path) -> None:
    """An empty file only we can read, before anyone writes into it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


def run_setup(guest: Guest, lines: tuple[str, ...]) -> None:
    for line in lines:
        r = guest.run(line, timeout=60)
        if r.status != 0:
            raise CaptureError(f"setup command {line!r} failed (status {r.status}): "
                               f"{r.output.strip()[-200:]}")


def arm(guest: Guest, trigger: Trigger) -> None:
    for cmd in trigger.setup_commands():
        r = guest.run(cmd, timeout=30)
        if r.status != 0:
            raise CaptureError(f"setting up trigger {trigger.name}: {cmd!r} failed (status {r.status}): "
                               f"{r.output.strip()[-200:]}",
                               hint="the kernel may lack the sysctl or refuse the module")


def fire(guest: Guest, trigger: Trigger, qmp=None) -> int:
    """Crash the guest; return the transcript offset where it began. ``qmp``:
    an open kdebug.guest.qmp.Qmp (QEMU's monitor takes one client at a time)."""
    offset = len(guest.transcript)
    if trigger.qmp and qmp is not None:
        qmp.cmd(trigger.qmp)
    elif trigger.qmp:
        from kdebug.guest.qmp import Qmp

        with Qmp(guest.session.qmp_socket, timeout=10) as q:
            q.cmd(trigger.qmp)
    else:
        # Not run(): the command never returns, the kernel dies under it.
        guest.send(trigger.console)
    return offset


def keep_boot_log(cap, session) -> None:
    """A boot that failed leaves its console only in the session: keep it."""
    log = session.console_log
    if log.is_file() and log.stat().st_size:
        write_private(cap.directory / "console-main.log", log.read_text(errors="replace"))
        cap.logs["main"] = "console-main.log"


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", errors="replace") as f:
        f.write(text)
