"""What a shell opens: a dump (file, capture directory, a machine's dump
directory) or a running kdebug guest (--session NAME, --last)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdebug.errors import UsageError
from kdebug.session import Session, pick_session
from kdebug.vmcore.locate import Dump, open_dump


@dataclass
class Target:
    dump: Dump | None = None
    session: Session | None = None

    @property
    def live(self) -> bool:
        return self.session is not None

    @property
    def vmlinux(self) -> Path:
        return self.dump.vmlinux if self.dump else Path(self.session.kernel["vmlinux"])

    @property
    def module_debug_dir(self) -> Path | None:
        if self.dump:
            return self.dump.module_debug_dir
        d = self.session.kernel.get("module_debug_dir")
        return Path(d) if d else None

    def describe(self) -> str:
        if self.dump:
            return f"{self.dump.original} ({self.dump.info.format}, {self.dump.info.release or '?'})"
        s = self.session
        return f"live guest {s.name} (QEMU pid {s.qemu_pid}, {s.kernel.get('release')})"


def resolve_target(path: Path | None, session: str | None, last: bool, vmlinux: Path | None = None) -> Target:
    """A dump at ``path`` or a running guest; exactly one of them."""
    if path is not None and (session or last):
        raise UsageError("name either a dump or a running guest (--session/--last), not both")
    if path is not None:
        return Target(dump=open_dump(path, vmlinux=vmlinux))
    s = pick_session(session, last)
    if s is None:
        raise UsageError("nothing to open: name a dump, --session NAME or --last",
                         hint="`kdebug sessions` lists running guests")
    if not s.kernel.get("vmlinux"):
        raise UsageError(f"session {s.name} has no debug vmlinux recorded: its kernel has no symbols")
    return Target(session=s)
