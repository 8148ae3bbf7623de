"""Run QEMU from a plan and drive the guest's serial console (pexpect).

The one place that owns a QEMU process. It dies with us: the child gets
PR_SET_PDEATHSIG(SIGKILL), and :meth:`Guest.close` (called on every exit
path, Ctrl-C included) terminates it and waits.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import io
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pexpect

from kdebug.errors import BootError, GuestError, LaunchError, ToolMissing
from kdebug.guest.console import ESCAPE_OUTPUT, command_output, cuttable, kernel_free, printed_marker
from kdebug.model import PANIC_PREFIX
from kdebug.plan.argv import build_argv
from kdebug.plan.diagnose import Diagnosis, diagnose
from kdebug.plan.plan import LaunchPlan
from kdebug.session import Session

#: Printed by kdebug's busybox init once the shell is about to start.
READY = re.compile(r"kdebug-init: ready role=(\w+)")
#: Boot failures worth stopping for at once instead of waiting for the timeout.
PANIC = re.compile(re.escape(PANIC_PREFIX.rstrip()) + r"|Attempted to kill init|Failed to execute \S+ \(error")
QEMU_ERROR = re.compile(r"qemu-system-\w+: (.*)")
#: QEMU 10 under a KVM that cannot run the guest (no nested virtualisation)
#: stops the vCPU with this instead of exiting or hanging silently.
KVM_INTERNAL_ERROR = re.compile(r"(KVM internal error[^\r\n]*)")
#: Where a command's output waits (one file per command, removed after it is
#: printed): /init mounts a tmpfs on /tmp in every role.
OUTPUT_FILE = "/tmp/.kdebug-out"
#: How long the first line typed into a new shell waits for its answer
#: before it is typed again (the shell answers within ~0.1 s under TCG).
PROBE_SECONDS = 3.0
#: What :meth:`Guest.expect` returns instead of an index.
EOF = "eof"
TIMEOUT = "timeout"

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


class _Tee(io.StringIO):
    """Keeps everything pexpect read, for diagnosis and for callers."""


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
        child.logfile_read = _Tee()
        session.qemu_pid = child.pid
        session.argv = argv
        session.cmdline = plan.cmdline
        session.gdb_port = plan.gdb_port
        session.accel = plan.accel
        session.save()
        return cls(plan, session, child, argv)

    @property
    def transcript(self) -> str:
        return self.child.logfile_read.getvalue()

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
        self._shell_ready = True

    # --- shell ------------------------------------------------------------------

    def _setup_shell(self, timeout: float) -> None:
        # No echo, no prompt, no line editing surprises. Kernel messages are
        # already off the console: kdebug.loglevel= on the command line. In
        # the shell itself (a subshell would keep the exports), with the
        # shell's answer awaited: see _answer.
        self._answer("stty -echo cols 1000 2>/dev/null; export TERM=dumb PS1='' PS2=''; ", timeout)
        self._shell_ready = True

    def _raw_run(self, command: str, timeout: float) -> CommandResult:
        self._seq += 1
        tag = f"{os.getpid()}x{self._seq}"
        begin = f"__KD_B_{tag}__"
        end = re.compile(cuttable(f"__KD_E_{tag}_" + r"(\d+)" + "__"))
        out = f"{OUTPUT_FILE}.{tag}"
        t0 = time.monotonic()
        # A subshell: `exit N` in the command ends it, not the guest's shell.
        # Its output goes to a file of its own, printed escaped once it is
        # done (kdebug.guest.console): no kernel record can pass for a line
        # of it, and what a background job prints later is never another
        # command's (the file is gone by then). No sed for no output: each
        # program the shell starts costs ~10 ms under TCG.
        self.child.sendline(f"echo {begin}; ( {command}\n) </dev/null >{out} 2>&1; kd_s=$?; "
                            f"[ -s {out} ] && {ESCAPE_OUTPUT} {out}; rm -f {out}; echo __KD_E_{tag}_${{kd_s}}__")
        try:
            self.child.expect(re.compile(printed_marker(begin)), timeout=timeout)
            i = self.child.expect([end, pexpect.EOF, pexpect.TIMEOUT], timeout=timeout)
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
        return CommandResult(command, command_output(self.child.before),
                             int(kernel_free(self.child.match.group(1))), time.monotonic() - t0)

    def run(self, command: str, timeout: float = 30.0) -> CommandResult:
        """Run a shell command in the guest; return its output and exit status."""
        if not self.alive():
            raise GuestError("the guest is not running")
        if not self._shell_ready:
            self._setup_shell(timeout)
        return self._raw_run(command, timeout)

    def wait_shell(self, timeout: float = 30.0) -> None:
        """Return once the shell has answered. At the ready line init is
        still starting it; after an answer the shell (and init, waiting for
        it) sleeps until the next input."""
        self._answer("", timeout)

    def _answer(self, prefix: str, timeout: float) -> None:
        """Type ``prefix`` and an echo of a builtin arithmetic expansion (no
        fork; the typed line's echo cannot match its answer) until the shell
        answers: the line is typed again every PROBE_SECONDS, as a line typed
        while the guest's shell starts has been lost (a first command that
        got no answer at all, once in a full suite run). Both parts may run
        twice; neither minds."""
        deadline = time.monotonic() + timeout
        tries = 0
        while True:
            tries += 1
            self._seq += 1
            tag = f"{os.getpid()}x{self._seq}"
            self.child.sendline(f"{prefix}echo __KD_W_{tag}_$((6*7))__")
            wait = min(PROBE_SECONDS, max(deadline - time.monotonic(), 0.1))
            try:
                i = self.child.expect([re.compile(rf"__KD_W_{tag}_42__"), pexpect.EOF, pexpect.TIMEOUT],
                                      timeout=wait)
            except OSError as e:
                raise GuestError(f"console read failed: {e}") from None
            if i == 0:
                break
            if i == 1:
                raise GuestError("QEMU exited before its shell answered",
                                 hint=f"see {self.session.console_log}")
            if time.monotonic() >= deadline:
                raise GuestError(f"guest shell did not answer within {timeout:g} s",
                                 hint=f"typed {tries} times; see {self.session.console_log}")
        if tries > 1:
            self.warnings.append(Diagnosis(
                "shell-retyped", f"the guest's shell answered none of the first {tries - 1} lines kdebug typed",
                "nothing to do (kdebug typed it again); the console log shows what was lost"))

    # --- raw console (for what never returns: a trigger, sysrq-g) ----------------

    @property
    def pid(self) -> int:
        """QEMU's process id."""
        return self.child.pid

    def send(self, line: str) -> None:
        """Type ``line`` into the console without waiting for it to finish."""
        self.child.sendline(line)

    def expect(self, patterns: list[re.Pattern], timeout: float) -> tuple[int | str, re.Match | None]:
        """Index of the first of ``patterns`` seen on the console with its match,
        or (EOF, None) when QEMU exited, (TIMEOUT, None) after ``timeout``."""
        try:
            i = self.child.expect([*patterns, pexpect.EOF, pexpect.TIMEOUT], timeout=timeout)
        except OSError:
            return EOF, None
        if i == len(patterns):
            return EOF, None
        if i == len(patterns) + 1:
            return TIMEOUT, None
        return i, self.child.match

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


def _which(cmd: str) -> bool:
    import shutil

    return shutil.which(cmd) is not None


def boot(plan: LaunchPlan, session: Session, *, ready: re.Pattern | str | None = READY,
         timeout: float = 60.0) -> Guest:
    """Start QEMU and wait until the guest is ready (or diagnose why not)."""
    guest = Guest.start(plan, session)
    if plan.accel_fallback and not plan.freeze:
        guest = _tcg_if_kvm_silent(guest, session)
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


#: A working KVM guest prints its first kernel line well within this.
KVM_SILENCE_SECONDS = 8.0
#: A line from the kernel proper: a timestamped record, or its banner (the
#: first record, for a kernel built without CONFIG_PRINTK_TIME). The boot
#: stub's own lines ("Probing EDD (edd=off to disable)... ok") do not count:
#: a KVM without nested virtualisation printed that one and then hung.
KERNEL_LINE = re.compile(r"\[ *\d+\.\d{6}\]|Linux version ")


def _tcg_if_kvm_silent(guest: Guest, session: Session) -> Guest:
    """KVM that opens but hangs (broken nested virtualisation) prints no
    kernel line, or QEMU refuses it at once: restart the same plan under TCG
    rather than wait for the boot timeout."""
    try:
        i = guest.child.expect([KERNEL_LINE, QEMU_ERROR, KVM_INTERNAL_ERROR, pexpect.EOF, pexpect.TIMEOUT],
                               timeout=KVM_SILENCE_SECONDS)
    except OSError:
        i = 4
    if i == 0:
        return guest
    if i == 4:
        why = f"KVM guest printed no kernel line in {KVM_SILENCE_SECONDS:g} s"
    else:
        # e.g. "failed to set MSR 0x10a": QEMU gives up on KVM at once
        try:
            guest.child.expect(pexpect.EOF, timeout=5)
        except (pexpect.TIMEOUT, OSError):
            pass
        msgs = QEMU_ERROR.findall(guest.transcript) or KVM_INTERNAL_ERROR.findall(guest.transcript)
        why = "QEMU failed under KVM" + (f" ({msgs[0].strip()})" if msgs else "")
    guest.close()
    plan = dataclasses.replace(guest.plan, accel="tcg", accel_fallback=False)
    retry = Guest.start(plan, session)
    retry.warnings.append(Diagnosis("kvm-failed", f"{why}: restarted under TCG",
                                    "use --accel tcg to skip the KVM try"))
    return retry


__all__ = ["EOF", "READY", "TIMEOUT", "CommandResult", "Guest", "boot"]


