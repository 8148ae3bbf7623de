"""Session directories: how later commands find a running guest.

Each guest gets a private directory (0700) under the runtime dir holding
``session.json`` (pids, gdb port, QMP socket, kernel), the console log and
the QMP socket. A session whose QEMU is gone is stale and is swept.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kdebug.errors import SessionError, UsageError
from kdebug.paths import runtime_dir


@dataclass
class Session:
    name: str
    dir: Path
    owner_pid: int = field(default_factory=os.getpid)
    qemu_pid: int | None = None
    gdb_port: int | None = None
    accel: str = ""
    kernel: dict = field(default_factory=dict)
    initrd: str | None = None
    cmdline: str = ""
    argv: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    @property
    def qmp_socket(self) -> Path:
        return self.dir / "qmp.sock"

    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    @property
    def json_path(self) -> Path:
        return self.dir / "session.json"

    def save(self) -> None:
        d = asdict(self)
        d["dir"] = str(self.dir)
        d["qmp_socket"] = str(self.qmp_socket)
        d["console_log"] = str(self.console_log)
        tmp = self.json_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(d, indent=2))
        tmp.replace(self.json_path)

    def alive(self) -> bool:
        return self.qemu_pid is not None and _pid_is_qemu(self.qemu_pid)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _pid_is_qemu(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"qemu-system" in cmd


def sessions_root() -> Path:
    d = runtime_dir() / "sessions"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


#: A session directory without its session.json younger than this is one
#: another kdebug is starting (it writes session.json once QEMU runs).
STARTING = 120.0


def new_session(name: str | None = None) -> Session:
    root = sessions_root()
    if name is not None:
        if not name or "/" in name or name.startswith("."):
            raise UsageError(f"bad session name {name!r}")
        d = root / name
        old = _load(d) if d.exists() else None
        if old is not None and old.alive():
            raise UsageError(f"session {name!r} is already running (QEMU pid {old.qemu_pid})")
        if old is None and d.exists() and time.time() - d.stat().st_mtime < STARTING:
            # Made, but QEMU not started yet: another kdebug is starting it.
            raise UsageError(f"session {name!r} is being started by another kdebug command",
                             hint="wait for it, or choose another --name")
        shutil.rmtree(d, ignore_errors=True)
    else:
        name = time.strftime("kd-%Y%m%d-%H%M%S-") + str(os.getpid())
        d = root / name
    try:
        d.mkdir(mode=0o700)
    except FileExistsError:  # two commands starting the same name at once
        raise UsageError(f"session {name!r} is being started by another kdebug command",
                         hint="wait for it, or choose another --name") from None
    return Session(name=name, dir=d)


def _load(d: Path) -> Session | None:
    try:
        data = json.loads((d / "session.json").read_text())
    except (OSError, ValueError):
        return None
    fields = {k: v for k, v in data.items() if k in Session.__dataclass_fields__}
    fields["dir"] = Path(fields["dir"])
    return Session(**fields)


def list_sessions(sweep: bool = True) -> list[Session]:
    out = []
    for d in sorted(sessions_root().iterdir()):
        s = _load(d)
        if s is None:
            continue
        if s.alive():
            out.append(s)
        elif sweep and not _pid_alive(s.owner_pid):
            s.remove()  # QEMU and its owner are gone: nothing will read it again
    return sorted(out, key=lambda s: s.started)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_session(name: str | None = None) -> Session:
    live = list_sessions()
    if name is None:
        if not live:
            raise SessionError("no running kdebug guest",
                               hint="start one with `kdebug boot`; `kdebug sessions` lists them")
        return live[-1]
    for s in live:
        if s.name == name:
            return s
    raise SessionError(f"no running kdebug guest named {name!r}",
                       hint="`kdebug sessions` lists them")


def pick_session(name: str | None, last: bool) -> Session | None:
    """The guest that --session NAME or --last names (None when neither is given)."""
    if name and last:
        raise UsageError("--session and --last name different guests: give one")
    if name or last:
        return find_session(name)
    return None
