"""kdebug's Python API: what the CLI does, returning records, not text.

    import kdebug

    with kdebug.boot(release="6.12") as guest:          # a running guest
        print(guest.run("uname -r").output)
        with guest.attach() as gdb:                       # gdb over MI, guest stopped
            tasks = gdb.tasks()                           # [TaskRecord, ...]
        prog = guest.drgn()                               # live drgn program
    cap = kdebug.capture(trigger="oops")                  # Capture (capture.json)
    report = kdebug.postmortem(cap.directory)             # Report
    prog = kdebug.open_dump(cap.directory)                # drgn program over the dump

Errors are :class:`kdebug.errors.KdebugError` subclasses with a one-line
message (and a hint); no QEMU outlives the ``with`` block or the process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.errors import DebuggerError
from kdebug.model import FrameRecord, ModuleRecord, PrintkRecord, TaskRecord


@dataclass
class BootOptions:
    release: str | None = None  # an installed distro kernel (prefix ok); default: the distribution's
    kernel: Path | None = None  # or a bzImage with its vmlinux
    vmlinux: Path | None = None
    tree: Path | None = None  # or a build tree
    memory: str | None = None
    cpus: int | None = None
    crashkernel: str | None = None
    append: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # guest path -> host file in the initramfs
    modules: list[str] = field(default_factory=list)


def boot(timeout: float = 120.0, **options) -> Guest:
    """Boot a guest to its shell (see :class:`BootOptions` for ``options``)."""
    from kdebug.guest.qemu import boot as boot_guest
    from kdebug.plan.prepare import LaunchOptions, prepare
    from kdebug.session import new_session

    o = BootOptions(**options)
    session = new_session()
    try:
        prep = prepare(LaunchOptions(kernel=o.kernel, vmlinux=o.vmlinux, tree=o.tree, release=o.release,
                                     memory=o.memory, cpus=o.cpus, crashkernel=o.crashkernel,
                                     append=list(o.append), extra_files=dict(o.files),
                                     extra_modules=list(o.modules)), session)
        return Guest(boot_guest(prep.plan, session, timeout=timeout), prep.kernel)
    except BaseException:
        session.remove()
        raise


class Guest:
    """A running guest this process owns; stopped by :meth:`close` (or ``with``)."""

    def __init__(self, guest, kernel) -> None:
        self._guest = guest
        self.kernel = kernel  # kdebug.kernel.Kernel
        self.session = guest.session

    def run(self, command: str, timeout: float = 30.0):
        """Run a shell command in the guest: a CommandResult (output, status, seconds)."""
        return self._guest.run(command, timeout)

    def attach(self, timeout: float = 300.0) -> Gdb:
        """Stop the guest and attach gdb (symbols at its KASLR offset, kd- commands
        loaded); the guest runs again when the Gdb is closed."""
        from kdebug.attach.mi import GdbMI
        from kdebug.attach.plan import AttachOptions, KernelFiles, gdb_argv, plan_for
        from kdebug.guest.introspect import kaslr_offset_from_qmp
        from kdebug.guest.qmp import Qmp

        if not self.session.gdb_port:
            raise DebuggerError("this guest has no gdbstub")
        with Qmp(self.session.qmp_socket) as q:
            q.cmd("stop")
            offset = kaslr_offset_from_qmp(q, self.kernel.vmlinux)
        plan = plan_for(KernelFiles.from_kernel(self.kernel), self.session.gdb_port, offset, AttachOptions(),
                        detach_on_quit=True)
        plan = dataclasses.replace(plan, styled=False)  # its output is read, not shown
        return Gdb(GdbMI(gdb_argv(plan), timeout=timeout), self)

    def drgn(self):
        """A live drgn program over the running guest (it need not be stopped)."""
        from kdebug.analysis.live import open_live

        return open_live(self.session.qmp_socket, self._guest.pid, self.kernel.vmlinux,
                         self.kernel.module_debug_dir)[0]

    def resume(self) -> None:
        from kdebug.guest.qmp import Qmp

        if self._guest.alive():
            with Qmp(self.session.qmp_socket) as q:
                q.cmd("cont")

    def close(self) -> None:
        try:
            self._guest.poweroff()
        finally:
            self.session.remove()

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Gdb:
    """gdb on a guest through MI; the kd- commands' records, not their text."""

    def __init__(self, mi, guest: Guest | None = None) -> None:
        self.mi = mi
        self._guest = guest

    def execute(self, command: str, timeout: float = 120.0) -> str:
        """Any gdb command; what it printed."""
        return self.mi.execute(command, timeout)

    def _records(self, cls, command: str, *args) -> list:
        """A kd- command's records through its MI twin (``-kd-ps``): no console text."""
        from kdebug.attach.mi import mi_record

        return [mi_record(cls, d) for d in self.mi.records(command, *args) or []]

    def tasks(self) -> list[TaskRecord]:
        return self._records(TaskRecord, "kd-ps")

    def modules(self) -> list[ModuleRecord]:
        return self._records(ModuleRecord, "kd-lsmod")

    def dmesg(self) -> list[PrintkRecord]:
        return self._records(PrintkRecord, "kd-dmesg")

    def backtrace(self, pid: int) -> list[FrameRecord]:
        return self._records(FrameRecord, "kd-bt", pid)

    def close(self) -> None:
        self.mi.close()
        if self._guest is not None:
            self._guest.resume()

    def __enter__(self) -> Gdb:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def drgn_tasks(prog) -> list[TaskRecord]:
    """Every task of a drgn program (a dump, or :meth:`Guest.drgn`) as the report lists them."""
    from kdebug.analysis.tasks import collect_tasks

    return collect_tasks(prog)


def capture(*, release: str | None = None, method: str = "kdump", trigger: str = "sysrq",
            run: str | None = None, out: Path | None = None, memory: str | None = None, **capture_options):
    """Boot, crash and dump a guest: the Capture record (its directory holds
    the vmcore, both consoles and capture.json)."""
    from kdebug.capture.api import capture as run_capture
    from kdebug.capture.plan import CaptureOptions
    from kdebug.plan.prepare import LaunchOptions

    base = LaunchOptions(release=release, memory=memory, crashkernel="auto" if method != "qemu" else None)
    return run_capture(base, CaptureOptions(method=method, trigger=trigger, run=run, out=out, **capture_options))


def postmortem(path: Path | str, *, crash: bool = True, vmlinux: Path | None = None):
    """A dump (file or directory) -> its Report."""
    from kdebug.postmortem.build import postmortem as build

    return build(Path(path), vmlinux=vmlinux, crash=crash)


def open_dump(path: Path | str, *, vmlinux: Path | None = None):
    """A drgn program over a dump, debug info loaded."""
    from kdebug.analysis.program import open_program
    from kdebug.vmcore.locate import open_dump as locate

    return open_program(locate(Path(path), vmlinux=vmlinux))[0]
