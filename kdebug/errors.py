"""One error hierarchy for kdebug.

Every failure a user can cause or meet is a :class:`KdebugError` whose message
is one line that says what went wrong and, where we know it, what to do. Each
boundary translates it once: the CLI into a click error, gdb into
``gdb.GdbError``. Subclasses name the stage that failed.
"""


class KdebugError(Exception):
    """Base of every error kdebug reports to a user."""

    stage = "kdebug"

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


class PostmortemError(KdebugError):
    """Analysing a vmcore failed (debug info, drgn or crash)."""

    stage = "postmortem"


class CaptureError(KdebugError):
    """A stage of a crash capture failed; names it and carries its diagnoses."""

    stage = "capture"

    def __init__(self, message: str, *, hint: str | None = None, stage: str = "capture",
                 diagnoses=(), directory=None):
        super().__init__(message, hint=hint)
        self.failed_stage = stage
        self.diagnoses = list(diagnoses)
        self.directory = directory  # the capture directory (capture.json, logs), if any
