"""One error hierarchy for kdebug.

Every failure a user can cause or meet is a :class:`KdebugError` whose message
is one line that says what went wrong and, where we know it, what to do. Each
boundary translates it once: the CLI into a click error, gdb into
``gdb.GdbError``. Subclasses name the stage that failed.

Exit statuses (README "Exit statuses and faults"): ``EXIT_ERROR`` for a
kdebug error, ``EXIT_OUTPUT`` when kdebug could not write its own output
(disk full, read-only, removed), 130 when interrupted (SIGINT, SIGTERM,
SIGHUP); ``kdebug run`` and ``kdebug shell`` say 125 for any error of their
own, since the guest command's status is theirs to pass on.
"""

#: A kdebug error (bad input, a failed stage).
EXIT_ERROR = 1
#: kdebug's own output could not be written (sysexits.h EX_IOERR).
EXIT_OUTPUT = 74


class KdebugError(Exception):
    """Base of every error kdebug reports to a user."""

    stage = "kdebug"
    exit_status = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(KdebugError):
    """Bad arguments or input files."""

    stage = "input"


class ToolMissing(KdebugError):
    """A host tool (qemu, gdb, crash, ...) is not installed."""

    stage = "host"


class KernelError(KdebugError):
    """Finding or pairing a kernel and its vmlinux failed."""

    stage = "kernel"


class InitramfsError(KdebugError):
    """Building an initramfs or root image failed."""

    stage = "initramfs"


class LaunchError(KdebugError):
    """QEMU could not be started."""

    stage = "launch"


class BootError(KdebugError):
    """The guest did not come up; carries the diagnoses of its console log."""

    stage = "boot"

    def __init__(self, message: str, *, hint: str | None = None, diagnoses=(), log_path=None):
        super().__init__(message, hint=hint)
        self.diagnoses = list(diagnoses)
        self.log_path = log_path


class GuestError(KdebugError):
    """Talking to a running guest failed (console, QMP, timeouts)."""

    stage = "guest"


class SessionError(KdebugError):
    """No such running guest session."""

    stage = "session"


class BuildError(KdebugError):
    """Configuring or compiling a kernel failed."""

    stage = "build"


class DebuggerError(KdebugError):
    """Starting gdb or attaching it to the guest failed."""

    stage = "gdb"


class GdbCommandError(DebuggerError):
    """A command gdb ran failed; ``gdb_message`` is gdb's own one line
    (a kd- command's error, "No symbol ...", ...)."""

    def __init__(self, gdb_message: str, *, command: str = "") -> None:
        super().__init__(f"gdb: {gdb_message}")
        self.gdb_message = gdb_message
        self.command = command


class VmcoreError(KdebugError):
    """The file is not a usable vmcore (format, truncation, no VMCOREINFO)."""

    stage = "vmcore"


class OutputError(KdebugError):
    """kdebug could not write its own output: the disk is full, the file
    system read-only, the directory removed, or an I/O error
    (kdebug.output words each)."""

    stage = "output"
    exit_status = EXIT_OUTPUT
    errno: int | None = None
    where = None  # the directory that refused the write


class PostmortemError(KdebugError):
    """Analysing a vmcore failed (debug info, drgn or crash)."""

    stage = "postmortem"


class CaptureError(KdebugError):
    """A stage of a crash capture failed; names it and carries its diagnoses."""

    stage = "capture"

    def __init__(self, message: str, *, hint: str | None = None, stage: str = "capture",
                 diagnoses=(), directory=None, exit_status: int | None = None):
        super().__init__(message, hint=hint)
        if exit_status is not None:
            self.exit_status = exit_status
        self.failed_stage = stage
        self.diagnoses = list(diagnoses)
        self.directory = directory  # the capture directory (capture.json, logs), if any
