"""Steps both capture methods take in a booted guest (adapter: drives the
console through :class:`kdebug.guest.qemu.Guest`, QMP for NMIs)."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from kdebug.capture import diagnose as cdiag
from kdebug.capture import panicon
from kdebug.capture.module import trigger_module
from kdebug.capture.modules import keep_modules
from kdebug.capture.plan import (
    DUMP_DISK_DEVICES,
    DUMP_PORT,
    DUMP_PORT_DEVICES,
    CaptureOptions,
    StageClock,
    capture_devices_arg,
)
from kdebug.capture.record import Capture
from kdebug.capture.triggers import MODULE_GUEST_PATH, Trigger
from kdebug.errors import CaptureError, OutputError
from kdebug.guest.console import cuttable, kernel_free, kernel_records, printed_marker
from kdebug.guest.qemu import EOF, Guest, boot
from kdebug.guest.qmp import Qmp
from kdebug.kernel import Kernel
from kdebug.output import write_file
from kdebug.plan.cmdline import cmdline_value
from kdebug.plan.plan import LaunchPlan, SerialPort
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
    later: list[str] = []  # devices only the capture kernel uses, when nothing else shares their driver
    if stream is not None:
        ports.append(SerialPort(DUMP_PORT, stream))
        if not base.serial_ports:
            later += DUMP_PORT_DEVICES
    drives = list(base.drives) + ([disk] if disk is not None else [])
    if disk is not None and not base.drives and base.rootfs is None:
        later += DUMP_DISK_DEVICES
    append = list(base.append)
    if arg := capture_devices_arg(later):
        append.append(arg)
    if unsafe_crashkernel:
        # Past the CLI's 80M floor on purpose (fault tests): straight onto the cmdline.
        append.append(f"crashkernel={unsafe_crashkernel}")
        crashkernel = None
    return dataclasses.replace(base, extra_files=files, serial_ports=ports, pvpanic=pvpanic,
                               crashkernel=crashkernel, append=append, drives=drives,
                               gdb_port=0 if base.gdb_port is None else base.gdb_port)


def record_modules(cap: Capture, lopts: LaunchOptions) -> None:
    """capture.json's ``modules``: the out-of-tree modules the guest gets, kept beside the dump."""
    if not cap.modules:  # once: an auto fallback boots again with the same files
        cap.modules = keep_modules({g: h for g, h in lopts.extra_files.items() if g != HOOK_GUEST_PATH},
                                   cap.directory)


def prepare_recorded(lopts: LaunchOptions, session: Session, kernel: Kernel, cap: Capture,
                     clock: StageClock) -> LaunchPlan:
    """The prepare stage every capture starts with; the guest's shape
    (memory, CPUs, crashkernel=, command line) goes into capture.json."""
    with clock.stage("prepare"):
        plan = prepare(lopts, session, resolve_kernel=lambda *a: kernel).plan
    cap.guest = {"memory_mb": plan.memory_mb, "cpus": plan.cpus,
                 "crashkernel": cmdline_value(plan.cmdline, "crashkernel")}
    cap.kernel["cmdline"] = plan.cmdline
    return plan


def boot_recorded(lopts: LaunchOptions, session: Session, kernel: Kernel, cap: Capture,
                  clock: StageClock, timeout: float) -> Guest:
    """:func:`prepare_recorded`, then the boot."""
    plan = prepare_recorded(lopts, session, kernel, cap, clock)
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


#: The console loglevel while kdebug waits for the crash: KERN_WARNING and
#: more urgent reach the console, so a WARNING or a sanitizer report (pr_warn,
#: pr_err: neither raises the loglevel as an Oops does) is seen as it happens.
#: Nothing after the trigger uses kdebug's shell markers, which printk could cut.
WATCH_LOGLEVEL = 5


def arm(guest: Guest, trigger: Trigger, panic_on: tuple[str, ...] = panicon.DEFAULT) -> dict:
    """Set what panics (``--panic-on``, then the trigger's own sysctls) and
    raise the console loglevel; return the record capture.json keeps."""
    names = panicon.all_sysctls()
    # Feature detection: a kernel without a switch has no file for it.
    r = guest.run("for f in " + " ".join(panicon.sysctl_path(n) for n in names)
                  + "; do [ -e $f ] && echo $f; done; true", timeout=30)
    present = {n for n in names if panicon.sysctl_path(n) in r.output.split()}
    writes, absent, impossible = panicon.settings(panic_on, present)
    if impossible:
        missing = ", ".join(s.sysctl for w in impossible for s in panicon.SWITCHES[w])
        raise CaptureError(f"--panic-on {','.join(impossible)}: this kernel has no {missing}",
                           hint="it was built without that detector; drop the word")
    if trigger.returns:
        write_run_script(guest, trigger.console)
    # One round trip for what kdebug sets itself (each costs ~0.1 s under TCG).
    own = [f"echo {v} > {panicon.sysctl_path(k)}" for k, v in writes.items()]
    own.append(f'{{ read lvl _ < /proc/sys/kernel/printk; [ "$lvl" -ge {WATCH_LOGLEVEL} ] '
               f"|| dmesg -n {WATCH_LOGLEVEL}; }}")
    for cmd in [" && ".join(own), *trigger.setup_commands()]:
        r = guest.run(cmd, timeout=30)
        if r.status != 0:
            raise CaptureError(f"setting up trigger {trigger.name}: {cmd!r} failed (status {r.status}): "
                               f"{r.output.strip()[-200:]}",
                               hint="the kernel may lack the sysctl or refuse the module")
    done = {**writes, **dict(trigger.sysctls)}
    return {"words": list(panic_on) or ["none"], "sysctls": done, "absent": absent}


#: The end of a --run command, with its exit status, through the kernel log
#: (whole at any loglevel, see busybox-init.sh kd_say).
RUN_DONE = re.compile(r"kdebug-run: done status=(\d+)\s")
#: The command's own output lies between two markers the shell prints on
#: the tty, in line with it. The kernel's start and done records go
#: out at once, while the tty's buffer drains later: the done record can
#: come before the command's last lines (one CI run on 6.12 saw it).
RUN_OUT_BEGIN = "__KD_RUN_OUT__"
RUN_OUT_END = "__KD_RUN_END__"
_RUN_OUT_BEGIN = re.compile(printed_marker(RUN_OUT_BEGIN))
RUN_OUT_ENDED = re.compile(cuttable(RUN_OUT_END))
RUN_SCRIPT = "/tmp/kdebug-run.sh"
#: What is typed to start it (busybox's line editing echoes it with the
#: tty's echo off, before the output's begin marker).
RUN_TYPED = f"sh {RUN_SCRIPT}"
#: How long the no-crash diagnosis waits for the tty to print the end marker.
RUN_OUT_WAIT = 10.0


def run_script(command: str) -> str:
    """The reproducer between two markers that go through the kernel log
    (whole at any loglevel, never mistaken for the command's own echo), and
    two on the tty around its own output."""
    # A subshell, so `exit N` ends the command, not the script; the newline
    # before ")" ends a trailing comment. The command stays on line 2, where
    # the shell's messages about it point.
    return (f'echo "<0>kdebug-run: start" > /dev/kmsg\necho {RUN_OUT_BEGIN}; ( {command}\n) </dev/null\n'
            f'kd_s=$?; echo {RUN_OUT_END}; echo "<0>kdebug-run: done status=$kd_s" > /dev/kmsg\n')


def write_run_script(guest: Guest, command: str) -> None:
    # base64: the command reaches the guest byte for byte, whatever it quotes;
    # in pieces, as busybox's line editing takes at most 1024 characters a line.
    data = base64.b64encode(run_script(command).encode()).decode()
    pieces = [f"echo {data[i:i + 512]} >> {RUN_SCRIPT}.b64" for i in range(0, len(data), 512)]
    pieces[0] = pieces[0].replace(">>", ">", 1)
    pieces[-1] += f" && base64 -d < {RUN_SCRIPT}.b64 > {RUN_SCRIPT}"  # a short command: one round trip
    for line in pieces:
        r = guest.run(line, timeout=30)
        if r.status != 0:
            raise CaptureError(f"cannot write the --run script in the guest: {r.output.strip()[-200:]}")


_ESC = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_output(console: str) -> cdiag.RunOutput:
    """What a --run command printed, from the console after the trigger,
    and the kernel's records printed meanwhile: its own lines are those
    between the tty's markers with the records taken out (a record is
    printed whole, but anywhere in a line)."""
    text = _ESC.sub("", console)
    if (begin := _RUN_OUT_BEGIN.search(text)):
        text = text[begin.end():]
    if (end := RUN_OUT_ENDED.search(text)):
        text = text[:end.start()]
    records = [r.strip() for r in kernel_records(text + "\n") if not RUN_DONE.search(r)]
    own = kernel_free(text + "\n").replace("\r", "")
    return cdiag.RunOutput("\n".join(ln for ln in own.splitlines() if ln.strip()), "\n".join(records))


def wait_run_output(guest: Guest, offset: int, timeout: float = RUN_OUT_WAIT) -> str:
    """The console after the trigger once the tty has printed the --run
    command's end marker (or ``timeout`` passed: QEMU gone, a shell that
    stopped printing); the command returned, so it comes."""
    if not RUN_OUT_ENDED.search(guest.transcript, offset):
        guest.expect([RUN_OUT_ENDED], timeout)
    return guest.transcript[offset:]


def fire(guest: Guest, trigger: Trigger, qmp: Qmp | None = None) -> int:
    """Crash the guest; return the transcript offset where it began. ``qmp``:
    an open Qmp (QEMU's monitor takes one client at a time)."""
    offset = len(guest.transcript)
    if trigger.qmp and qmp is not None:
        qmp.cmd(trigger.qmp)
    elif trigger.qmp:
        with Qmp(guest.session.qmp_socket, timeout=10) as q:
            q.cmd(trigger.qmp)
    else:
        # Not run(): the command never returns, the kernel dies under it.
        guest.send(RUN_TYPED if trigger.returns else trigger.console)
    return offset


#: After a splat that no armed ``--panic-on`` word covers, the console quiet
#: this long (the report printed whole) with no panic: the kernel is going on.
SPLAT_QUIET = 3.0
#: ... but no longer than this after the splat (a printk flood never quiets).
#: A splat an armed word covers panics for certain, but kdump starts from the
#: Oops without a line (panic_on_oops: no "Kernel panic"), and the capture
#: kernel's first line can come 3-4 s later under TCG on a busy host: such a
#: splat waits this long for the crash, not SPLAT_QUIET.
SPLAT_MAX = 20.0
#: After a --run command exits 0, how long a crash it left behind (a work
#: item, a timer) may take to come.
RUN_GRACE = 3.0
#: After it exits non-zero: only for the console to catch up.
RUN_DRAIN = 0.5


@dataclass
class Watched:
    """How the wait for a crash ended."""

    crashed: bool = False
    splat: panicon.Splat | None = None  # the kernel complained and went on
    status: int | None = None  # a --run command's exit status, when it returned
    exited: bool = False  # QEMU exited
    timed_out: bool = False
    waited: float = 0.0  # from the splat or the command's end to the decision


def watch(guest: Guest, offset: int, timeout: float, *, crash: re.Pattern | None = None,
          panicked: Callable[[], bool] | None = None, armed: Collection[str] = ()) -> Watched:
    """Wait for the crash the trigger should cause: ``crash`` on the console
    (kdump: the panic, or the capture kernel starting) or ``panicked()``
    (QEMU's GUEST_PANICKED). Stop early when the answer is already known: a
    splat the kernel went on from (one whose ``--panic-on`` word is not in
    ``armed``, the words :func:`arm` set), or a --run command that ended."""
    patterns = [panicon.ANY_SPLAT, RUN_DONE] + ([crash] if crash is not None else [])
    start = time.monotonic()
    splat_at = returned_at = None
    quiet = SPLAT_QUIET
    status = None
    seen = len(guest.transcript)
    changed = start
    while True:
        if panicked is not None and panicked():
            return Watched(crashed=True)
        i, m = guest.expect(patterns, 0.2)
        now = time.monotonic()
        if i == EOF:
            return Watched(crashed=panicked is not None and panicked(), exited=True, status=status)
        if i == 2:
            return Watched(crashed=True)
        if i == 0:
            splat_at = now if splat_at is None else splat_at
            # Any header an armed word covers (an Oops after a WARNING too).
            this = panicon.find_splat(m.group(0)) if m is not None else None
            if this is not None and this.word in armed:
                quiet = SPLAT_MAX
        if i == 1 and status is None and m is not None:
            status, returned_at = int(m.group(1)), now
        if len(guest.transcript) != seen:
            seen, changed = len(guest.transcript), now
        if splat_at is not None:
            if now - changed >= quiet or now - splat_at >= SPLAT_MAX:
                return Watched(splat=panicon.find_splat(guest.transcript[offset:]), status=status,
                               waited=now - splat_at)
        elif returned_at is not None and now - returned_at >= (RUN_GRACE if status == 0 else RUN_DRAIN):
            return Watched(status=status, waited=now - returned_at)
        if now - start > timeout:
            return Watched(timed_out=True, status=status)


def no_crash_error(w: Watched, guest: Guest, offset: int, panic_on: tuple[str, ...],
                   release: str | None, modules: list[dict]) -> CaptureError | None:
    """The error for a splat without panic or a --run command that ended (None otherwise)."""
    if w.splat is not None:
        d = cdiag.splat_without_panic(w.splat, panic_on, w.waited)
    elif w.status is not None and not w.timed_out and not w.exited:
        d = cdiag.run_returned(w.status, run_output(wait_run_output(guest, offset)), waited=w.waited,
                               release=release, modules=modules)
    else:
        return None
    return CaptureError(d.cause, hint=d.fix, diagnoses=[d])


def note_no_crash(cap: Capture, w: Watched, guest: Guest, offset: int, opts: CaptureOptions,
                  kernel: Kernel) -> CaptureError | None:
    """Record in capture.json what came instead of a crash; the error to raise."""
    if w.splat is not None:
        cap.splat = {**w.splat.to_dict(), "waited": round(w.waited, 1)}
    if w.status is not None:
        cap.run_status = w.status
    return no_crash_error(w, guest, offset, opts.panic_on, kernel.release, cap.modules)


def keep_boot_log(cap, session) -> None:
    """A boot that failed leaves its console only in the session: keep it."""
    log = session.console_log
    if log.is_file() and log.stat().st_size:
        save_log(cap, "main", "console-main.log", log.read_text(errors="replace"))


def save_log(cap: Capture, kind: str, name: str, text: str) -> None:
    """Keep a console log beside the dump, whole or not at all: one that
    does not fit (a full or read-only output directory) is said in
    capture.json's ``unwritten``, and never raises past the capture's own error."""
    try:
        write_private(cap.directory / name, text)
    except OutputError as e:
        cap.unwritten[name] = e.message
        return
    cap.logs[kind] = name


def write_private(path: Path, text: str) -> None:
    """Write a 0600 file whole or not at all (kdebug.output.write_file)."""
    write_file(path, text, mode=0o600)
