"""gdb started while the guest boots.

The KASLR offset is fixed before the kernel's first instruction runs, and
the IDT gives it away as soon as trap_init() has installed the real
handlers, seconds before the guest reaches its shell. So a watcher thread
polls the IDT through QMP while the main thread waits for the console, and
starts gdb the moment the offset is known: gdb reads the kernel's symbols
(the slow part of its start) while the guest boots, then waits in
`kd-await` until :meth:`EarlyGdb.go` says the guest is at its shell. Until
then gdb is not connected, so the guest boots undisturbed.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
from pathlib import Path

from kdebug.attach.plan import GdbPlan, gdb_argv
from kdebug.attach.runner import gdb_status
from kdebug.errors import DebuggerError, KdebugError
from kdebug.guest.introspect import kaslr_link_addresses, kaslr_offset_at
from kdebug.guest.qmp import Qmp

#: Seconds between two looks at the IDT while the guest boots.
POLL_SECONDS = 0.1


class EarlyGdb:
    """``plan`` is the gdb plan but for its KASLR offset, which the watcher
    fills in. Use: :meth:`start`, wait for the guest, then :meth:`ready`
    (False: the offset never showed; the caller attaches the usual way) and
    :meth:`go`; :meth:`close` always, which ends a gdb that never got its go."""

    def __init__(self, qmp_socket: Path, plan: GdbPlan) -> None:
        self._qmp_socket = qmp_socket
        self._plan = plan
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="kdebug-early-gdb", daemon=True)
        self._go_fd: int | None = None
        self.offset: int | None = None
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._thread.start()

    def start_at(self, offset: int) -> None:
        """Start gdb at once with a known offset (a restored guest's, from
        its saved state: checked against the IDT before :meth:`go`)."""
        self._start_gdb(offset)

    def _watch(self) -> None:
        try:
            link = kaslr_link_addresses(self._plan.vmlinux)
        except (OSError, KdebugError):
            return  # the usual path after boot says what is wrong with the vmlinux
        while not self._stop.is_set():
            try:
                with Qmp(self._qmp_socket, timeout=5) as q:
                    while not self._stop.wait(POLL_SECONDS):
                        try:
                            offset = kaslr_offset_at(q, link)
                        except KdebugError:
                            continue  # IDT not set up yet
                        self._start_gdb(offset)
                        return
            except Exception:  # noqa: BLE001  QMP not up yet, or gone with the guest: the main thread reports
                self._stop.wait(POLL_SECONDS)

    def _start_gdb(self, offset: int) -> None:
        read, write = os.pipe()
        try:
            with self._lock:
                if self._stop.is_set():
                    return
                plan = dataclasses.replace(self._plan, kaslr_offset=offset, await_fd=read)
                self.proc = subprocess.Popen(gdb_argv(plan), pass_fds=(read,))
                self.offset, self._go_fd, write = offset, write, None
        except OSError:
            return  # gdb cannot start: the usual path reports it
        finally:
            os.close(read)
            if write is not None:
                os.close(write)

    def ready(self) -> bool:
        """Stop watching; True when gdb is up with the symbols, awaiting go."""
        with self._lock:
            self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.proc is not None and self.proc.poll() is None

    def go(self, timeout: float | None = None) -> int:
        """Let gdb connect and run; its exit status. Ctrl-C belongs to gdb
        from here on (it interrupts the guest), as in run_gdb."""
        assert self.proc is not None and self._go_fd is not None
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            os.write(self._go_fd, b"go\n")
            os.close(self._go_fd)
            self._go_fd = None
            try:
                return gdb_status(self.proc.wait(timeout))
            except subprocess.TimeoutExpired:
                raise DebuggerError(f"gdb did not finish within {timeout:g} s") from None
        finally:
            signal.signal(signal.SIGINT, old)

    def close(self) -> None:
        """End a gdb that did not finish (boot failed, Ctrl-C, timeout): EOF
        on its await pipe makes it quit; a kill if it does not."""
        with self._lock:
            self._stop.set()
        if self._go_fd is not None:
            os.close(self._go_fd)
            self._go_fd = None
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
