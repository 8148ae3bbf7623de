"""QMP over the session's unix socket (the qemu.qmp library), with timeouts."""

from __future__ import annotations

import time
from pathlib import Path

from kdebug.errors import GuestError

#: QEMU 10's mapped-ram: each RAM page at a fixed offset of the file, zero
#: pages left as holes (a 1 GiB guest at its shell: ~110 MB on disk).
MAPPED_RAM = [{"capability": "mapped-ram", "state": True}]


def _probe(path: Path, timeout: float) -> None:
    """Fail fast instead of hanging: QEMU's monitor serves one client at a
    time, and the library's connect has no timeout while another holds it."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
            greeting = s.recv(4096)
        except TimeoutError:
            raise GuestError(f"QMP at {path} sent no greeting within {timeout:g} s: another client "
                             "holds the monitor") from None
        except OSError as e:
            raise GuestError(f"cannot connect to QMP at {path}: {e}") from None
    if b"QMP" not in greeting:
        raise GuestError(f"QMP at {path} answered {greeting[:80]!r}, not a QMP greeting")


class Qmp:
    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        from qemu.qmp.legacy import QEMUMonitorProtocol

        self._path = socket_path
        self._timeout = timeout
        _probe(socket_path, timeout)
        self._qmp = QEMUMonitorProtocol(str(socket_path))
        try:
            self._qmp.connect(negotiate=True)
            self._qmp.settimeout(timeout)
        except Exception as e:  # the library raises several unrelated types
            raise GuestError(f"cannot connect to QMP at {socket_path}: {e}") from None

    def cmd(self, name: str, **args):
        try:
            return self._qmp.cmd(name, **args)
        except Exception as e:
            raise GuestError(f"QMP {name} failed: {e}") from None

    def pull_event(self, wait: float | bool = False):
        try:
            return self._qmp.pull_event(wait=wait)
        except Exception as e:
            if "timeout" in type(e).__name__.lower() or "Timeout" in str(e):
                return None
            raise GuestError(f"QMP event read failed: {e}") from None

    # --- saved states (kdebug.warm) -------------------------------------------

    def save_state(self, path: Path, timeout: float = 120.0) -> None:
        """Write the stopped guest's whole state to ``path`` (QMP migrate to a
        file: URI with mapped-ram). The guest stays stopped ("postmigrate");
        ``cont`` runs it on."""
        self.cmd("migrate-set-capabilities", capabilities=MAPPED_RAM)
        self.cmd("migrate", uri=f"file:{path}")
        self._migration_done(timeout, "saving the guest")

    def load_state(self, path: Path, timeout: float = 60.0) -> None:
        """Fill a QEMU started with ``-incoming defer`` from ``path``."""
        self.cmd("migrate-set-capabilities", capabilities=MAPPED_RAM)
        self.cmd("migrate-incoming", uri=f"file:{path}")
        self._migration_done(timeout, "restoring the guest")

    def _migration_done(self, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            info = self.cmd("query-migrate")
            status = info.get("status") if isinstance(info, dict) else None
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise GuestError(f"{what} failed: {info.get('error-desc') or status}")
            if status is None and "restoring" in what and self.cmd("query-status").get("status") == "running":
                return  # an incoming migration that completed reports no status afterwards
            if time.monotonic() > deadline:
                raise GuestError(f"{what} did not finish within {timeout:g} s (status {status})")
            time.sleep(0.005)

    def close(self) -> None:
        try:
            self._qmp.close()
        except Exception:
            pass

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
