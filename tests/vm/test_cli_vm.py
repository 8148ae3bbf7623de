"""The CLI against real guests: output, exit status, sessions, and no QEMU left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect

from tests.conftest import need_tool, qemu_pids_for

KDEBUG = [sys.executable, "-m", "kdebug.cli.main"]


def children_qemu(pid: int) -> list[int]:
    """QEMU processes whose parent is ``pid``."""
    return qemu_pids_for(parent=pid)


def gone(pids: list[int], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{p}").exists() for p in pids):
            return True
        time.sleep(0.1)
    return False


def test_run_prints_output_and_returns_status():
    need_tool("qemu-system-x86_64")
    r = subprocess.run([*KDEBUG, "run", "--", "echo hello from $(uname -s); exit 3"],
                       capture_output=True, text=True, timeout=180)
    assert r.stdout == "hello from Linux\n", r.stderr
    assert r.returncode == 3
    assert "exit status 3" in r.stderr


def _start_and_wait_ready(args: list[str]) -> subprocess.Popen:
    # SIGINT as a terminal's Ctrl-C finds it: a suite started as a background
    # job without job control (`pytest &` in a script) ignores SIGINT, and
    # that disposition is inherited, so kdebug would never see the signal.
    p = subprocess.Popen([*KDEBUG, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 180
    for line in p.stderr:
        if "guest ready" in line or time.monotonic() > deadline:
            break
    return p


def test_ctrl_c_stops_qemu():
    need_tool("qemu-system-x86_64")
    p = _start_and_wait_ready(["run", "--", "sleep 300"])
    try:
        qemus = children_qemu(p.pid)
        assert qemus, "no QEMU child found"
        p.send_signal(signal.SIGINT)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            wchan = Path(f"/proc/{p.pid}/wchan").read_text() if Path(f"/proc/{p.pid}").exists() else "?"
            threads = len(list(Path(f"/proc/{p.pid}/task").iterdir())) if Path(f"/proc/{p.pid}").exists() else 0
            p.kill()
            raise AssertionError(f"kdebug run did not end within 30 s of SIGINT (wchan {wchan}, {threads} "
                                 f"threads); its stderr: {p.stderr.read()[-2000:]}") from None
        assert rc == 130, p.stderr.read()[-2000:]
        assert gone(qemus)
    finally:
        p.kill()


def test_sigkill_of_kdebug_still_stops_qemu():
    need_tool("qemu-system-x86_64")
    p = _start_and_wait_ready(["run", "--", "sleep 300"])
    try:
        qemus = children_qemu(p.pid)
        assert qemus
        p.kill()  # no handler runs: the child's PDEATHSIG must take QEMU down
        p.wait(timeout=10)
        assert gone(qemus)
    finally:
        p.kill()


def test_boot_is_interactive_and_recorded_as_session():
    need_tool("qemu-system-x86_64")
    name = f"t{os.getpid()}"
    child = pexpect.spawn(KDEBUG[0], [*KDEBUG[1:], "boot", "--name", name], encoding="utf-8",
                          timeout=180, dimensions=(40, 200))
    try:
        child.expect("kdebug-init: ready role=main")
        child.sendline("echo $((6 * 7))XY")
        child.expect("42XY")
        listed = subprocess.run([*KDEBUG, "sessions", "--json"], capture_output=True, text=True, timeout=30)
        sessions = {s["name"]: s for s in json.loads(listed.stdout)}
        assert name in sessions
        s = sessions[name]
        assert s["gdb_port"] and Path(s["qmp"]).exists()
        # The gdbstub answers on loopback only.
        import socket

        with socket.create_connection(("127.0.0.1", s["gdb_port"]), timeout=5):
            pass
        qemu = s["qemu_pid"]
        child.send("\x01x")  # Ctrl-A x: QEMU quits
        child.expect(pexpect.EOF, timeout=30)
        assert gone([qemu])
        listed = subprocess.run([*KDEBUG, "sessions", "--json"], capture_output=True, text=True, timeout=30)
        assert name not in {s["name"] for s in json.loads(listed.stdout)}
    finally:
        child.close(force=True)
