"""The crash runner's failure handling with stand-in crash programs: a hang is
killed at the timeout, a failure is retried with --minimal, outputs are read
back per command; and triage's per-dump timeout."""

from __future__ import annotations

import os
import time
from pathlib import Path

from kdebug.crash.runner import CrashProcess, run_crash


def _fake(tmp_path: Path, body: str) -> str:
    p = tmp_path / "fake-crash"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(0o755)
    return str(p)


def test_hang_is_killed_at_the_timeout(tmp_path):
    pidfile = tmp_path / "pid"
    fake = _fake(tmp_path, f"echo $$ > {pidfile}; exec sleep 60")
    t0 = time.monotonic()
    run = CrashProcess(tmp_path, tmp_path, timeout=1.0, crash=fake).result()
    assert not run.ok and "did not finish within 1 s" in run.error
    assert time.monotonic() - t0 < 10
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)
        alive = Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except ProcessLookupError:
        alive = False
    assert not alive


def test_outputs_are_read_per_command(tmp_path):
    # Stand-in: for every "cmd > file" line of the command file, write "out of cmd" to file.
    fake = _fake(tmp_path, 'while [ "$1" != "-i" ]; do shift; done\n'
                           'grep " > " "$2" | while read -r cmd _ file; do echo "out of $cmd" > "$file"; done')
    run = CrashProcess(tmp_path, tmp_path, timeout=10, crash=fake).result()
    assert run.ok and run.outputs["sys"] == "out of sys\n" and set(run.outputs) == {"sys", "bt", "mod"}


def test_failure_is_retried_minimal(tmp_path):
    fake = _fake(tmp_path, 'case "$*" in *--minimal*) while [ "$1" != "-i" ]; do shift; done; '
                           'grep " > " "$2" | while read -r cmd _ file; do echo minimal > "$file"; done;; '
                           '*) echo "crash: vmlinux and vmcore do not match!" >&2; exit 1;; esac')
    run = run_crash(tmp_path, tmp_path, timeout=10, crash=fake)
    assert run.ok and run.mode == "minimal" and run.outputs == {"log": "minimal\n"}
    assert "vmlinux and vmcore do not match" in run.error


def test_missing_crash(tmp_path):
    run = run_crash(tmp_path, tmp_path, crash="/nonexistent/crash")
    assert not run.ok and "not installed" in run.error


def test_triage_timeout_is_per_dump(tmp_path):
    from kdebug.postmortem.triage import triage
    from kdebug.vmcore.layouts import DumpSite

    (tmp_path / "a.vmcore").write_bytes(b"x")
    (entry,) = triage([DumpSite(tmp_path / "a.vmcore", "file")], timeout=0.01)
    assert not entry.ok and str(entry.error) == "timed out after 0.01 s" and entry.error.stage == "timeout"
