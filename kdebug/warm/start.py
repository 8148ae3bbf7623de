"""Warm starts (adapter over QEMU and QMP): restore a guest saved at a stage
instead of booting it, or boot it and save it there for the next run.

Save: QMP ``stop``, ``migrate`` to ``file:`` with mapped-ram, ``cont`` (the
guest that was saved goes on with its run). Restore: the same QEMU command
line plus ``-incoming defer`` (host paths, ports and sockets are the new
run's), ``migrate-incoming`` from the state file, ``cont``; then one shell
round trip sets the guest's wall clock from the host (it resumes at the
time it was saved; its monotonic clock and uptime go on from the save,
since QEMU's virtual clock stops while the guest is stopped) and, with
``reseed``, mixes 64 bytes from the host's urandom into the guest's pool.
Every start of a state shares its KASLR offset, its boot log and, without
``reseed``, its random state: callers record :func:`start_line`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.errors import GuestError, KdebugError
from kdebug.guest.introspect import kaslr_offset_from_qmp
from kdebug.guest.qemu import QEMU_ERROR, Guest, boot
from kdebug.guest.qmp import Qmp
from kdebug.plan.plan import LaunchPlan
from kdebug.session import Session
from kdebug.warm import store
from kdebug.warm.key import Fingerprint, StateRecord, changed_image, fingerprint, refusal, start_line

#: A save needs at least this much free space in the cache (a 1 GiB guest at
#: its shell writes ~110 MB; a full disk fails the save, said in one line).
MIN_FREE_BYTES = 256 << 20


def warm_off() -> bool:
    """KDEBUG_WARM=0: every start is cold, as with --cold."""
    return os.environ.get("KDEBUG_WARM", "1") == "0"


@dataclass
class WarmStart:
    """One command's warm start: ``restore`` (a guest, or None to boot cold),
    then for a cold boot ``save`` once the guest is at ``stage``.
    ``notes``: one line each, for the user (why a state was not used)."""

    plan: LaunchPlan
    stage: str = "ready"
    release: str = ""
    vmlinux: Path | None = None
    enabled: bool = True
    reseed: bool = False
    notes: list[str] = field(default_factory=list)
    record: StateRecord | None = None
    kind: str = "cold"  # cold | warm
    saved: bool = False
    _fp: Fingerprint | None = None
    _entry: store.Entry | None = None
    _looked: bool = False
    _qemu_version: str = ""

    def __post_init__(self) -> None:
        if self.plan.freeze or self.plan.incoming:
            self.enabled = False
        if warm_off():
            self.enabled = False
        if self.enabled and self.plan.drives:
            # A restored guest's page cache and file systems expect the disk as
            # it was at the save; a disk written since would be corrupted.
            self.enabled = False
            self.notes.append("no warm start for a guest with disk images (--rootfs, --drive): booting cold")

    @property
    def line(self) -> str:
        """``start`` in capture.json and the report."""
        if self.kind == "warm" and self.record is not None:
            return start_line(self.record)
        return "cold" + (f" (state {self.record.key} saved)" if self.saved and self.record else "")

    def fingerprint(self) -> Fingerprint:
        if self._fp is None:
            p = self.plan
            digests = {str(f): store.file_digest(f) for f in (p.image, p.initrd, p.firmware) if f is not None}
            qemu, self._qemu_version = store.qemu_identity(p.qemu)
            self._fp = fingerprint(p, digests, qemu, self.stage)
        return self._fp

    # --- restore -------------------------------------------------------------

    def find(self) -> store.Entry | None:
        """The saved state this guest may restore (checked), or None. Once."""
        if self._looked:
            return self._entry
        self._looked = True
        if not self.enabled:
            return None
        try:
            fp = self.fingerprint()
        except OSError as e:
            self.notes.append(f"no warm start: {e}")
            self.enabled = False
            return None
        entry = store.lookup(fp.key())
        if entry is None:
            old = changed_image(store.entries_records(), str(self.plan.image), fp.image, self.stage)
            if old is not None:
                self.notes.append(f"the kernel image {old.image} changed since state {old.key} was saved "
                                  f"({old.release}): booting cold")
            return None
        why = refusal(entry.record, fp, self._qemu_version, entry.state_bytes())
        if why is not None:
            self.notes.append(f"saved state {entry.record.key} not used: {why}; booting cold")
            store.remove(entry.record.key)
            return None
        self._entry = entry
        return entry

    def restore(self, session: Session, timeout: float = 60.0) -> Guest | None:
        """The guest restored from its saved state, at its shell; None when
        there is none (or it cannot be used: said in :attr:`notes`)."""
        entry = self.find()
        if entry is None:
            return None
        try:
            guest = self._restore(entry, session, timeout)
        except KdebugError as e:
            self.notes.append(f"restoring state {entry.record.key} failed ({e.message}); booting cold")
            store.remove(entry.record.key)
            _reset_session_files(session)
            return None
        entry.touch()
        self.record, self.kind = entry.record, "warm"
        return guest

    def _restore(self, entry: store.Entry, session: Session, timeout: float) -> Guest:
        guest = Guest.start(dataclasses.replace(self.plan, incoming=True), session)
        try:
            with connect(session.qmp_socket, guest.alive, timeout) as q:
                q.load_state(entry.state, timeout)
                if q.cmd("query-status").get("status") != "running":
                    q.cmd("cont")
            guest.mark_restored(entry.boot_log)
            self._after_restore(guest)
        except GuestError as e:
            # QEMU says why it refused the state on its stderr (the console's pty).
            i, m = guest.expect([QEMU_ERROR], 2.0)
            guest.close()
            if isinstance(i, int) and m is not None:
                raise GuestError(f"QEMU: {m.group(1).strip()[:200]}") from None
            raise e from None
        except BaseException:
            guest.close()
            raise
        return guest

    def _after_restore(self, guest: Guest) -> None:
        """The guest's wall clock from the host, fresh randomness if asked:
        one round trip, which also shows the shell answers."""
        lines = [f"date -s @{int(time.time() + 0.5)} >/dev/null"]
        if self.reseed:
            # Mixed into the input pool (no entropy credited: a shell has no
            # RNDADDENTROPY); the crng takes it at its next reseed, within a
            # second of uptime this early (random.c crng_has_old_seed).
            lines.append(f"echo {secrets.token_hex(64)} > /dev/urandom")
        r = guest.run("; ".join(lines), timeout=30)
        if r.status != 0:
            raise GuestError(f"the restored guest's shell failed to set its clock: {r.output.strip()[:120]}")

    # --- save ----------------------------------------------------------------

    def save(self, guest: Guest) -> None:
        """Save ``guest`` (booted cold, now at :attr:`stage` with its shell
        idle) and let it go on. A failure is a note, never the run's end."""
        self.save_qemu(guest.session.qmp_socket, guest.boot_seconds, guest.transcript)

    def save_qemu(self, qmp_socket: Path, boot_seconds: float | None, boot_log: str) -> None:
        """:meth:`save` of a QEMU by its monitor (``kdebug boot``'s has no Guest)."""
        if not self.enabled or self.kind == "warm":
            return
        try:
            fp = self.fingerprint()
        except OSError as e:
            self.notes.append(f"guest not saved: {e}")
            return
        root = store.root()
        free = os.statvfs(root)
        if free.f_bavail * free.f_frsize < MIN_FREE_BYTES:
            self.notes.append(f"guest not saved: under {MIN_FREE_BYTES >> 20} MB free in {root}")
            return
        key = fp.key()
        tmp = store.new_dir(key)
        t0 = time.monotonic()
        offset = None
        try:
            with Qmp(qmp_socket) as q:
                q.cmd("stop")
                try:
                    if self.vmlinux is not None:
                        with contextlib.suppress(KdebugError, OSError):
                            offset = kaslr_offset_from_qmp(q, self.vmlinux)
                    q.save_state(tmp / store.STATE)
                finally:
                    q.cmd("cont")
        except KdebugError as e:
            store.remove(tmp.name)
            self.notes.append(f"guest not saved ({e.message})")
            return
        rec = StateRecord(key=key, saved=time.time(), stage=self.stage, qemu=fp.qemu,
                          qemu_version=self._qemu_version, machine=fp.machine, image=str(self.plan.image),
                          image_digest=fp.image, release=self.release, state_bytes=0, kaslr_offset=offset,
                          boot_seconds=boot_seconds, save_seconds=round(time.monotonic() - t0, 3))
        try:
            entry = store.publish(tmp, rec, boot_log)
        except OSError as e:
            store.remove(tmp.name)
            self.notes.append(f"guest not saved ({e})")
            return
        self.record, self.saved = rec, entry is not None
        for gone in store.prune(keep=key):
            self.notes.append(f"cache over its cap: state {gone.record.key} removed")


@contextlib.contextmanager
def connect(path: Path, alive: Callable[[], bool], timeout: float):
    """QMP of a QEMU that has just started (its socket appears within ms)."""
    deadline = time.monotonic() + min(timeout, 30.0)
    while True:
        if not alive():
            raise GuestError("QEMU exited before its monitor was up")
        if path.exists():
            try:
                q = Qmp(path)
                break
            except GuestError:
                if time.monotonic() > deadline:
                    raise
        elif time.monotonic() > deadline:
            raise GuestError("QEMU's monitor did not come up")
        time.sleep(0.005)
    try:
        yield q
    finally:
        q.close()


def _reset_session_files(session: Session) -> None:
    """A failed restore leaves its console log and socket: the cold boot's own follow."""
    for p in (session.console_log, session.qmp_socket):
        p.unlink(missing_ok=True)


def start_guest(warm: WarmStart, session: Session, timeout: float, *, save: bool = True) -> Guest:
    """The guest at its shell: restored when a state is saved for it, else
    booted (and saved at once with ``save``; a caller that saves at a later
    stage calls :meth:`WarmStart.save` itself)."""
    guest = warm.restore(session, timeout)
    if guest is not None:
        return guest
    guest = boot(warm.plan, session, timeout=timeout)
    if save and warm.enabled:
        try:
            guest.run("true", timeout=timeout)  # the shell set up and idle: what a restore finds
            warm.save(guest)
        except BaseException:
            guest.close()
            raise
    return guest


#: base64 lines per file sent over the console (busybox's line editor takes 1024 characters a line).
B64_LINE = 76


def add_files(guest: Guest, files: dict[str, Path], timeout: float = 120.0) -> float:
    """Copy the run's own files (``--add``: guest path -> host file) into a
    restored guest over its console: base64 in a here-document, one round
    trip per file. Returns the seconds it took."""
    t0 = time.monotonic()
    for dest, host in sorted(files.items()):
        data = base64.b64encode(host.read_bytes()).decode()
        body = "\n".join(data[i:i + B64_LINE] for i in range(0, len(data), B64_LINE))
        path = "/" + dest.lstrip("/")
        mode = "755" if os.access(host, os.X_OK) else "644"
        cmd = (f"mkdir -p '{os.path.dirname(path) or '/'}' && base64 -d > '{path}' <<'__KD_ADD__'\n"
               f"{body}\n__KD_ADD__\nchmod {mode} '{path}'")
        r = guest.run(cmd, timeout=timeout)
        if r.status != 0:
            raise GuestError(f"copying {host} to {path} in the guest failed: {r.output.strip()[-200:]}")
    return time.monotonic() - t0


#: Per-run files larger than this together go into the initramfs of a cold boot instead.
MAX_LATE_BYTES = 4 << 20


def late_files(lopts, cold: bool, only: set[str] | None = None) -> tuple[dict[str, Path], str | None]:
    """Split ``lopts``' --add files (``only``: those of these guest paths)
    off for a warm start (they are copied in after the restore, so they are
    not part of the saved guest): (the files, None), or ({}, why not) when
    they stay in the initramfs of a cold boot."""
    files = {g: h for g, h in lopts.extra_files.items() if only is None or g in only}
    if cold or not files:
        return {}, None
    try:
        size = sum(p.stat().st_size for p in files.values())
    except OSError:
        return {}, None  # prepare says which file is missing
    if size > MAX_LATE_BYTES:
        return {}, (f"--add files are {size >> 20} MB, over the {MAX_LATE_BYTES >> 20} MB sent after "
                    "a warm start: booting cold")
    lopts.extra_files = {g: h for g, h in lopts.extra_files.items() if g not in files}
    return files, None
