"""Warm starts of ``kdebug boot`` (adapter): QEMU's console is the user's
terminal, so kdebug never reads it. A cold boot is saved from a thread that
watches QEMU's console log for kdebug's ready line (the guest stops for the
save, ~1 s, and goes on); a warm one starts QEMU with ``-incoming defer``
and restores it over QMP while the terminal waits. The restored shell is
at its prompt as saved: Enter shows a new one.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from collections.abc import Callable

from kdebug.errors import KdebugError
from kdebug.guest.qemu import READY
from kdebug.plan.argv import build_argv
from kdebug.session import Session
from kdebug.warm import store
from kdebug.warm.start import WarmStart, connect

#: How often the saver looks at the console log for the ready line.
POLL_SECONDS = 0.05


def start_interactive(warm: WarmStart, session: Session, popen: Callable[[list[str]], subprocess.Popen],
                      timeout: float = 60.0) -> tuple[subprocess.Popen, threading.Thread | None]:
    """QEMU on the user's terminal, restored or booted; with a boot, the
    thread that saves it at its ready line (join it before reading notes)."""
    entry = warm.find()
    if entry is not None:
        argv = build_argv(dataclasses.replace(warm.plan, incoming=True))
        proc = popen(argv)
        try:
            with connect(session.qmp_socket, lambda: proc.poll() is None, timeout) as q:
                q.load_state(entry.state, timeout)
                if q.cmd("query-status").get("status") != "running":
                    q.cmd("cont")
        except KdebugError as e:
            proc.kill()
            proc.wait()
            warm.notes.append(f"restoring state {entry.record.key} failed ({e.message}); booting cold")
            store.remove(entry.record.key)
            for p in (session.console_log, session.qmp_socket):
                p.unlink(missing_ok=True)
        else:
            entry.touch()
            warm.record, warm.kind = entry.record, "warm"
            return proc, None
    proc = popen(build_argv(warm.plan))
    if not warm.enabled:
        return proc, None
    t = threading.Thread(target=_save_at_ready, args=(warm, session, proc, timeout), daemon=True)
    t.start()
    return proc, t


def _save_at_ready(warm: WarmStart, session: Session, proc: subprocess.Popen, timeout: float) -> None:
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        try:
            log = session.console_log.read_text(errors="replace")
        except OSError:
            log = ""
        if READY.search(log):
            time.sleep(0.3)  # init hands over to the shell
            if proc.poll() is None:
                warm.save_qemu(session.qmp_socket, time.monotonic() - t0, log)
            return
        time.sleep(POLL_SECONDS)
