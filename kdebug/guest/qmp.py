"""QMP over the session's unix socket (the qemu.qmp library), with timeouts."""

from __future__ import annotations

from pathlib import Path

from kdebug.errors import GuestError


class Qmp:
    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        from qemu.qmp.legacy import QEMUMonitorProtocol

        self._path = socket_path
        self._timeout = timeout
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
