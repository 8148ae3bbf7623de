"""QMP over the session's unix socket (the qemu.qmp library), with timeouts."""

from __future__ import annotations

from pathlib import Path

from kdebug.errors import GuestError


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

    def close(self) -> None:
        try:
            self._qmp.close()
        except Exception:
            pass

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
