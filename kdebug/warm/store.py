"""The saved states on disk (adapter over the file system).

``<cache>/warm/<key>/`` holds ``state`` (QEMU's mapped-ram file, 0400: a
restore only reads it), ``record.json`` and ``boot.log`` (the console up to
the save, which every warm start of the state shares). A state is written
under ``<key>.tmp-<pid>`` and renamed into place whole, so a reader never
sees half of one; a second saver of the same key loses the rename and
throws its copy away. File digests are cached by path, size, mtime and
inode under ``<cache>/warm/digests``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kdebug.cachetrim import env_cap_bytes, evictions
from kdebug.paths import cache_dir
from kdebug.warm.key import DEFAULT_CAP_MB, StateRecord

STATE = "state"
RECORD = "record.json"
BOOT_LOG = "boot.log"


def root() -> Path:
    """``KDEBUG_WARM_DIR``, else ``<cache>/warm``."""
    if d := os.environ.get("KDEBUG_WARM_DIR"):
        p = Path(d)
        p.mkdir(mode=0o700, parents=True, exist_ok=True)
        return p
    return cache_dir("warm")


def cap_bytes() -> int:
    return env_cap_bytes("KDEBUG_WARM_CAP_MB", DEFAULT_CAP_MB)


@dataclass
class Entry:
    dir: Path
    record: StateRecord

    @property
    def state(self) -> Path:
        return self.dir / STATE

    @property
    def boot_log(self) -> str:
        try:
            return (self.dir / BOOT_LOG).read_text(errors="replace")
        except OSError:
            return ""

    def disk_bytes(self) -> int:
        return sum(p.stat().st_blocks * 512 for p in self.dir.iterdir() if p.is_file())

    def state_bytes(self) -> int | None:
        try:
            return self.state.stat().st_size
        except OSError:
            return None

    def touch(self) -> None:
        """Note a restore (for least-recently-used eviction)."""
        self.record.used = time.time()
        self.record.uses += 1
        with contextlib.suppress(OSError):
            _write_json(self.dir / RECORD, self.record.to_dict())


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def lookup(key: str) -> Entry | None:
    d = root() / key
    try:
        rec = StateRecord.from_dict(json.loads((d / RECORD).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return Entry(d, rec)


def entries() -> list[Entry]:
    out = []
    for d in sorted(root().iterdir()):
        if d.is_dir() and ".tmp-" not in d.name and d.name != "digests" and (e := lookup(d.name)) is not None:
            out.append(e)
    return out


def entries_records() -> list[StateRecord]:
    return [e.record for e in entries()]


def new_dir(key: str) -> Path:
    """A private directory to save into; :func:`publish` moves it into place."""
    d = root() / f"{key}.tmp-{os.getpid()}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(mode=0o700)
    return d


def publish(tmp: Path, rec: StateRecord, boot_log: str) -> Entry | None:
    """Write the record and log beside the state and move it into place; None
    when another run saved the same state first (ours is dropped)."""
    state = tmp / STATE
    os.chmod(state, 0o400)
    rec.state_bytes = state.stat().st_size
    (tmp / BOOT_LOG).write_text(boot_log)
    _write_json(tmp / RECORD, rec.to_dict())
    final = root() / rec.key
    try:
        tmp.rename(final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    return Entry(final, rec)


def remove(key: str) -> None:
    d = root() / key
    if d.is_dir():
        for p in d.iterdir():
            with contextlib.suppress(OSError):
                os.chmod(p, 0o600)
        shutil.rmtree(d, ignore_errors=True)


def prune(cap: int | None = None, keep: str | None = None) -> list[Entry]:
    """Delete the least recently used states past the cap (and leftovers of
    saves that died); the entries removed."""
    for d in root().glob("*.tmp-*"):
        pid = d.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)
    all_ = {e.record.key: e for e in entries()}
    doomed = evictions([(k, e.record.used or e.record.saved, e.disk_bytes()) for k, e in all_.items()],
                       cap_bytes() if cap is None else cap, keep)
    for k in doomed:
        remove(k)
    return [all_[k] for k in doomed]


# --- digests and QEMU's identity, cached ------------------------------------

def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def _cached(kind: str, stamp: str, compute) -> str:
    d = root() / "digests"
    d.mkdir(exist_ok=True)
    f = d / hashlib.sha256(f"{kind}:{stamp}".encode()).hexdigest()[:32]
    try:
        return f.read_text()
    except OSError:
        pass
    value = compute()
    with contextlib.suppress(OSError):
        tmp = f.with_name(f".{f.name}.{os.getpid()}")
        tmp.write_text(value)
        tmp.replace(f)
    return value


def file_digest(path: Path) -> str:
    """sha256 of ``path``'s content (cached while its size, mtime and inode hold)."""
    def compute() -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()

    return _cached("sha256", _stamp(path), compute)


def qemu_identity(binary: str) -> tuple[str, str]:
    """(path:size:mtime of the binary, its ``--version`` first line)."""
    path = Path(shutil.which(binary) or binary)
    stamp = _stamp(path)

    def version() -> str:
        try:
            out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.splitlines()[0].strip() if out else ""

    return stamp.rsplit(":", 1)[0], _cached("version", stamp, version)
