"""Run QEMU from a plan, watch the guest's console and drive its shell (pexpect).

A driven guest has two serial lines: the kernel's console (QEMU's stdio)
and the shell's own (a unix socket, LaunchPlan.shell_socket), so a
command's output never meets the kernel's records. An interactive guest,
or a kernel without the second port, has its shell on the console.

The one place that owns a QEMU process. It dies with us: the child gets
PR_SET_PDEATHSIG(SIGKILL), and :meth:`Guest.close` (called on every exit
path, Ctrl-C included) terminates it and waits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pexpect

from kdebug.errors import BootError, GuestError, LaunchError, ToolMissing
from kdebug.guest.console import cuttable, kernel_free
from kdebug.guest.kvm import QEMU_ERROR, tcg_if_kvm_silent
from kdebug.guest.lines import Tee, connect, drain, expect_reading, open_line
from kdebug.model import PANIC_PREFIX
from kdebug.plan.argv import build_argv
from kdebug.plan.diagnose import Diagnosis, diagnose
from kdebug.plan.plan import LaunchPlan
from kdebug.session import Session

#: Printed by kdebug's busybox init once the shell is about to start, with
#: the serial line the shell runs on when it is not the console.
READY = re.compile(r"kdebug-init: ready role=(\w+)(?: shell=(\w+))?\r*\n")
#: Boot failures worth stopping for at once instead of waiting for the timeout.
PANIC = re.compile(re.escape(PANIC_PREFIX.rstrip()) + r"|Attempted to kill init|Failed to execute \S+ \(error")
#: What :meth:`Guest.expect` returns instead of an index.
EOF = "eof"
TIMEOUT = "timeout"

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


@dataclass
class CommandResult:
    command: str
    output: str
    status: int
    seconds: float


class Guest:
    """A QEMU process with its console, owned by this Python process."""

    def __init__(self, plan: LaunchPlan, session: Session, child: pexpect.spawn, argv: list[str]):
        self.plan = plan
        self.session = session
        self.child = child
        #: The shell's channel: the console until the ready line names a line
        #: of its own (then a connection to plan.shell_socket).
        self.shell: pexpect.spawnbase.SpawnBase = child
        self._shell_conn: socket.socket | None = None
        self._sent_at = 0
        self.argv = argv
        self.started = time.monotonic()
        self.boot_seconds: float | None = None
        self.role: str | None = None
        self._shell_ready = False
        self._seq = 0
        #: Problems that did not stop the boot (e.g. crashkernel= not reserved).
        self.warnings: list[Diagnosis] = []

    # --- life cycle -----------------------------------------------------------

    @classmethod
    def start(cls, plan: LaunchPlan, session: Session) -> Guest:
        argv = build_argv(plan)
        if not _which(plan.qemu):
            raise ToolMissing(f"{plan.qemu} not found", hint="apt-get install qemu-system-x86 (scripts/setup.sh)")
        try:
            child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", codec_errors="replace",
                                  timeout=30, echo=False, preexec_fn=_die_with_parent,
                                  dimensions=(50, 1000))
        except pexpect.ExceptionPexpect as e:
            raise LaunchError(f"cannot start {plan.qemu}: {e}") from None
        # pexpect sleeps 50 ms before each send and 100 ms after close (for
        # programs that race their own echo): kdebug matches markers, and
        # close() has reaped QEMU before pexpect's close runs.
        child.delaybeforesend = None
        child.delayafterclose = child.delayafterterminate = 0
        child.ptyproc.delayafterclose = child.ptyproc.delayafterterminate = 0
        child.logfile_read = Tee()
        session.qemu_pid = child.pid
        session.argv = argv
        session.cmdline = plan.cmdline
        session.gdb_port = plan.gdb_port
        session.accel = plan.accel
        session.save()
        guest = cls(plan, session, child, argv)
        if plan.shell_socket is not None:
            guest._shell_conn = connect(plan.shell_socket, child)
        return guest

    @property
    def transcript(self) -> str:
        """Everything the console printed (the shell's too when it is there)."""
        return self.child.logfile_read.getvalue()

    @property
    def shell_transcript(self) -> str:
        """Everything the shell's channel carried."""
        return self.shell.logfile_read.getvalue()

    @property
    def shell_apart(self) -> bool:
        """Whether the shell has a serial line of its own (not the console)."""
        return self.shell is not self.child

    def sent_output(self) -> str:
        """What the shell printed since the last :meth:`send`."""
        return self.shell_transcript[self._sent_at:]

    def alive(self) -> bool:
        return self.child.isalive()

    def close(self, timeout: float = 5.0) -> None:
        """Stop QEMU (terminate, then kill) and reap it. Safe to call twice."""
        c = self.child
        if c.isalive():
            try:
                c.kill(signal.SIGTERM)
            except OSError:
                pass
            deadline = time.monotonic() + timeout
            while c.isalive() and time.monotonic() < deadline:
                time.sleep(0.005)  # QEMU exits within ~10 ms of SIGTERM
            if c.isalive():
                c.kill(signal.SIGKILL)
        try:
            c.close(force=True)
        except Exception:
            pass
        if self._shell_conn is not None:
            self._shell_conn.close()

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- boot -------------------------------------------------------------------

    def wait_for(self, pattern: re.Pattern | str, timeout: float) -> re.Match:
        """Wait for ``pattern`` on the console; diagnose a panic, exit or timeout."""
        pat = re.compile(pattern) if isinstance(pattern, str) else pattern
        try:
            i = self.child.expect([pat, PANIC, pexpect.EOF, pexpect.TIMEOUT], timeout=timeout)
        except OSError as e:
            raise GuestError(f"console read failed: {e}") from None
        if i == 0:
            return self.child.match
        if i == 1:
            # Let the panic finish printing (QEMU exits on the reboot that follows).
            try:
                self.child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=3)
            except OSError:
                pass
        self._fail(timed_out=(i == 3), exited=(i == 2), timeout=timeout)
        raise AssertionError("unreachable")

    def _fail(self, *, timed_out: bool, exited: bool, timeout: float) -> None:
        text = self.transcript
        if exited and not self.child.isalive() and self.child.signalstatus is not None:
            # Killed from outside (the OOM killer, a user): the console's last
            # lines say nothing about why, so no diagnosis of them.
            name = signal.Signals(self.child.signalstatus).name
            d = Diagnosis("qemu-killed", f"QEMU was killed by {name} before the guest was ready",
                          "something outside kdebug stopped it (the OOM killer? see dmesg); run again")
            raise BootError(d.cause, hint=d.fix, diagnoses=[d], log_path=self.session.console_log)
        qemu_msgs = "\n".join(QEMU_ERROR.findall(text))
        diags = diagnose(text, qemu_stderr=qemu_msgs, timed_out=timed_out,
                         expect_crashkernel="crashkernel=" in self.plan.cmdline)
        if exited and qemu_msgs and not diags:
            raise LaunchError(f"QEMU failed: {qemu_msgs.splitlines()[0]}")
        if timed_out:
            msg = f"guest not ready after {timeout:g} s"
        elif exited:
            msg = "QEMU exited before the guest was ready"
        else:
            msg = "the guest panicked during boot"
        if diags:
            msg += ": " + diags[0].cause
        raise BootError(msg, hint=diags[0].fix if diags else None, diagnoses=diags,
                        log_path=self.session.console_log)

    def wait_ready(self, timeout: float = 60.0) -> str:
        """Wait for kdebug's init to be up; return its role (main or capture)."""
        m = self.wait_for(READY, timeout)
        self.boot_seconds = time.monotonic() - self.started
        self.role = m.group(1)
        self._shell_on(m.group(2))
        self.warnings += [d for d in diagnose(self.transcript,
                                             expect_crashkernel="crashkernel=" in self.plan.cmdline)
                         if d.code in ("crashkernel-not-reserved", "initramfs-unpack")]
        return self.role

    def mark_restored(self, boot_log: str) -> None:
        """A guest restored from a state saved at its shell (kdebug.warm): the
        shell is set up (no echo, no prompt) and waits for a line; its boot
        log, shared by every start of that state, heads the transcript."""
        self.child.logfile_read.write(boot_log)
        self.boot_seconds = time.monotonic() - self.started
        self.role = "main"
        m = READY.search(boot_log)
        self._shell_on(m.group(2) if m else None)
        self._shell_ready = True

    def _shell_on(self, tty: str | None) -> None:
        """Speak to the shell where /init started it: ``tty`` (the plan's
        shell socket) or, without one, the console."""
        if tty is None:
            self.shell = self.child
            return
        if self._shell_conn is None:
            raise GuestError(f"the guest's shell is on {tty}, but QEMU's socket for it could not be reached",
                             hint=f"see {self.session.console_log}")
        if not self.shell_apart:
            self.shell = open_line(self._shell_conn)

    def _expect_shell(self, patterns: list, timeout: float) -> int:
        """``shell.expect`` that keeps reading the console meanwhile, so a
        kernel printing while a command runs never stalls the guest."""
        if not self.shell_apart:
            return self.shell.expect(patterns, timeout=timeout)
        return expect_reading(self.shell, self.child, patterns, timeout)

    def _setup_shell(self) -> None:
        # No echo, no prompt, no line editing surprises. Kernel messages are
        # already off the console: kdebug.loglevel= on the command line. Typed
        # ahead of the first command, in the shell itself (a subshell would
        # keep the exports), with no round trip of its own: echoed text never
        # matches a marker, which must start its line.
        self.shell.sendline("stty -echo cols 1000 2>/dev/null; export TERM=dumb PS1='' PS2=''")
        self._shell_ready = True

    def _raw_run(self, command: str, timeout: float) -> CommandResult:
        self._seq += 1
        tag = f"{os.getpid()}x{self._seq}"
        begin = f"__KD_B_{tag}__"
        end = re.compile(cuttable(f"__KD_E_{tag}_" + r"(\d+)" + "__"))
        t0 = time.monotonic()
        # A subshell: `exit N` in the command ends it, not the guest's shell.
        self.shell.sendline(f"echo {begin}; ( {command}\n) </dev/null; echo __KD_E_{tag}_$?__")
        try:
            # The begin marker as printed (not as echoed back, which follows "echo ").
            self._expect_shell([re.compile(rf"(?:^|[\r\n]){cuttable(begin)}\r*\n")], timeout)
            i = self._expect_shell([end, pexpect.EOF, pexpect.TIMEOUT], timeout)
        except pexpect.TIMEOUT:
            raise GuestError(f"guest shell did not answer within {timeout:g} s") from None
        except pexpect.EOF:
            raise GuestError("QEMU exited while a command was running",
                             hint=f"see {self.session.console_log}") from None
        if i == 1:
            raise GuestError(f"QEMU exited while running {command!r}",
                             hint=f"see {self.session.console_log}")
        if i == 2:
            raise GuestError(f"command {command!r} did not finish within {timeout:g} s")
        out = self.shell.before.replace("\r\n", "\n").replace("\r", "")
        return CommandResult(command, out, int(kernel_free(self.shell.match.group(1))), time.monotonic() - t0)

    def run(self, command: str, timeout: float = 30.0) -> CommandResult:
        """Run a shell command in the guest; return its output and exit status."""
        if not self.alive():
            raise GuestError("the guest is not running")
        if not self._shell_ready:
            self._setup_shell()
        return self._raw_run(command, timeout)

    def wait_shell(self, timeout: float = 30.0) -> None:
        """Return once the shell has answered. At the ready line init is
        still starting it; after an answer the shell (and init, waiting for
        it) sleeps until the next input. A builtin with an arithmetic
        expansion: no fork, and the typed line's echo cannot match."""
        self._seq += 1
        tag = f"{os.getpid()}x{self._seq}"
        self.shell.sendline(f"echo __KD_W_{tag}_$((6*7))__")
        try:
            self._expect_shell([re.compile(rf"__KD_W_{tag}_42__")], timeout)
        except pexpect.TIMEOUT:
            raise GuestError(f"guest shell did not answer within {timeout:g} s") from None
        except pexpect.EOF:
            raise GuestError("QEMU exited before its shell answered",
                             hint=f"see {self.session.console_log}") from None

    # --- raw console (for what never returns: a trigger, sysrq-g) ----------------

    @property
    def pid(self) -> int:
        """QEMU's process id."""
        return self.child.pid

    def send(self, line: str) -> None:
        """Type ``line`` into the shell without waiting for it to finish
        (:meth:`sent_output` has what it prints)."""
        self._sent_at = len(self.shell_transcript)
        self.shell.sendline(line)

    def expect(self, patterns: list[re.Pattern], timeout: float) -> tuple[int | str, re.Match | None]:
        """Index of the first of ``patterns`` seen on the console with its match,
        or (EOF, None) when QEMU exited, (TIMEOUT, None) after ``timeout``.
        The shell's own channel is read too (into :attr:`shell_transcript`)."""
        if self.shell_apart:
            drain(self.shell)
        return _outcome(lambda ps: self.child.expect(ps, timeout=timeout), patterns, self.child)

    def expect_shell(self, patterns: list[re.Pattern], timeout: float) -> tuple[int | str, re.Match | None]:
        """:meth:`expect` on what the shell prints (after a :meth:`send`)."""
        return _outcome(lambda ps: self._expect_shell(ps, timeout), patterns, self.shell)

    @contextlib.contextmanager
    def draining(self) -> Iterator[None]:
        """Keep reading the console while something else (gdb) owns the
        terminal, so QEMU never blocks on a full pty; the text stays in the
        transcript. The thread looks for its stop every 50 ms: the caller
        waits for it before it touches the console again, and stopping QEMU
        after gdb quits should not wait out a longer read."""
        stop = threading.Event()

        def drain() -> None:
            while not stop.is_set() and self.alive():
                try:
                    self.child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.05)
                    if self.shell_apart:
                        self.shell.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0)
                except Exception:
                    return

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(timeout=2)

    def poweroff(self, timeout: float = 10.0) -> None:
        """Stop the guest. Only its disks outlive it: what it wrote there is
        synced first; then QEMU stops (and flushes its own block layer)
        without the kernel's shutdown path, which costs ~1 s under TCG."""
        if self.alive() and self.plan.drives and self._shell_ready:
            try:
                self._raw_run("sync", timeout)
            except GuestError:
                pass
        self.close()


def _outcome(expect, patterns: list[re.Pattern], line) -> tuple[int | str, re.Match | None]:
    """``expect(patterns + [EOF, TIMEOUT])`` as (index, match), (EOF, None) or (TIMEOUT, None)."""
    try:
        i = expect([*patterns, pexpect.EOF, pexpect.TIMEOUT])
    except OSError:
        return EOF, None
    if i == len(patterns):
        return EOF, None
    if i == len(patterns) + 1:
        return TIMEOUT, None
    return i, line.match


def _which(cmd: str) -> bool:
    import shutil

    return shutil.which(cmd) is not None


def boot(plan: LaunchPlan, session: Session, *, ready: re.Pattern | str | None = READY,
         timeout: float = 60.0) -> Guest:
    """Start QEMU and wait until the guest is ready (or diagnose why not)."""
    guest = Guest.start(plan, session)
    if plan.accel_fallback and not plan.freeze:
        guest = tcg_if_kvm_silent(guest, Guest.start)
    try:
        if ready is not None:
            if ready is READY:
                guest.wait_ready(timeout)
            else:
                guest.wait_for(ready, timeout)
                guest.boot_seconds = time.monotonic() - guest.started
    except BaseException:
        guest.close()
        raise
    return guest


__all__ = ["EOF", "READY", "TIMEOUT", "CommandResult", "Guest", "boot"]


