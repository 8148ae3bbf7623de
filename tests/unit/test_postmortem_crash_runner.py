"""The crash runner's failure handling with stand-in crash programs: a hang is
killed at the timeout and retried with --minimal, a crash that stops before
its first command is said in one line and not retried, outputs are read back
per command; and triage's per-dump timeout."""

from __future__ import annotations

import os
from pathlib import Path

from kdebug.crash import extension as ext
from kdebug.crash.runner import CrashProcess, command_text, run_crash
from tests.conftest import need, need_tool


def _fake(tmp_path: Path, body: str) -> str:
    (tmp_path / "bin").mkdir(exist_ok=True)
    p = tmp_path / "bin" / "fake-crash"
    # Answers --version as crash does; the runner asks it once per run.
    p.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo "crash 8.0.2"; exit 0; }\n' + body + "\n")
    p.chmod(0o755)
    return str(p)


def test_hang_is_killed_at_the_timeout(tmp_path):
    pidfile = tmp_path / "pid"
    fake = _fake(tmp_path, f"echo $$ > {pidfile}; exec sleep 60")
    run = CrashProcess(tmp_path, tmp_path, timeout=1.0, crash=fake).result()
    assert not run.ok and run.timed_out and "did not finish within 1 s" in run.error
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)
        alive = Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except ProcessLookupError:
        alive = False
    assert not alive


# Stand-in: for every "cmd > file" line of the command file, write "out of cmd" to file.
_ANSWER = 'grep " > " "$2" | while read -r cmd _ file; do echo "out of $cmd" > "$file"; done'


def test_outputs_are_read_per_command(tmp_path):
    need_tool("gcc")
    need(ext.DEFS_H.is_file(), f"{ext.DEFS_H} is not installed (apt-get install crash)")
    fake = _fake(tmp_path, 'while [ "$1" != "-i" ]; do shift; done\n' + _ANSWER)
    # kdps builds against the defs.h installed beside the crash binary
    (tmp_path / "include" / "crash").mkdir(parents=True)
    (tmp_path / "include" / "crash" / "defs.h").symlink_to(ext.DEFS_H)
    run = CrashProcess(tmp_path, tmp_path, timeout=10, crash=fake).result()
    assert run.ok and run.outputs["sys"] == "out of sys\n"
    assert set(run.outputs) == {"sys", "kdps", "bt", "mod", "log"}


def test_extension_is_loaded_or_left_out(tmp_path, monkeypatch):
    monkeypatch.setenv("KDEBUG_CACHE", str(tmp_path / "cache"))
    assert command_text("report", tmp_path, None).split() == [
        "sys", ">", f"{tmp_path}/sys.txt", "bt", ">", f"{tmp_path}/bt.txt", "mod", ">", f"{tmp_path}/mod.txt",
        "log", ">", f"{tmp_path}/log.txt", "quit"]
    assert f"extend {tmp_path}/x.so\nkdps > {tmp_path}/kdps.txt\n" in command_text("report", tmp_path,
                                                                                   tmp_path / "x.so")
    # No defs.h: crash still runs, without kdps, and the run says why.
    monkeypatch.setattr("kdebug.crash.extension.DEFS_H", tmp_path / "no-defs.h")
    monkeypatch.setattr("kdebug.crash.runner.build_extension",
                        lambda crash: ext.build_extension(crash, defs_h=tmp_path / "no-defs.h"))
    fake = _fake(tmp_path, 'while [ "$1" != "-i" ]; do shift; done\n' + _ANSWER)
    run = CrashProcess(tmp_path, tmp_path, timeout=10, crash=fake).result()
    assert run.ok and set(run.outputs) == {"sys", "bt", "mod", "log"}
    assert "no-defs.h is missing (the header of " in run.extension_error


def test_hang_is_retried_minimal(tmp_path):
    fake = _fake(tmp_path, 'case "$*" in *--minimal*) while [ "$1" != "-i" ]; do shift; done; '
                           + _ANSWER.replace('"out of $cmd"', "minimal") + ';; *) exec sleep 60;; esac')
    run = run_crash(tmp_path, tmp_path, timeout=1, crash=fake)
    assert run.ok and run.mode == "minimal" and run.outputs == {"log": "minimal\n"}
    assert "did not finish within 1 s; retried with --minimal: ok" in run.error


def test_no_command_run_is_unsupported_and_not_retried(tmp_path):
    # crash 8.0.2 on a 6.12 dump: exit status 1, nothing said (under -s), no command run.
    runs = tmp_path / "runs"
    fake = _fake(tmp_path, f'echo run >> {runs}; exit 1')
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(b"not an ELF")
    run = run_crash(vmlinux, tmp_path, timeout=10, crash=fake)
    assert not run.ok and runs.read_text() == "run\n"
    assert run.unsupported == run.error
    assert run.unsupported == ("crash 8.0.2 cannot open this dump: it exits with status 1 before its first "
                               "command, saying nothing")


def test_failure_after_first_command_keeps_outputs(tmp_path):
    fake = _fake(tmp_path, 'while [ "$1" != "-i" ]; do shift; done\n'
                           'grep "^sys" "$2" | while read -r cmd _ file; do echo "out of $cmd" > "$file"; done\n'
                           'echo "bt: read of stack failed" >&2; exit 1')
    run = run_crash(tmp_path, tmp_path, timeout=10, crash=fake)
    assert not run.ok and run.unsupported is None and run.mode == "full"
    assert run.outputs == {"sys": "out of sys\n"} and run.error == "crash failed: bt: read of stack failed"


def test_missing_crash(tmp_path):
    run = run_crash(tmp_path, tmp_path, crash="/nonexistent/crash")
    assert not run.ok and "not installed" in run.error


def test_triage_timeout_is_per_dump(tmp_path):
    from kdebug.postmortem.triage import triage
    from kdebug.vmcore.layouts import DumpSite

    (tmp_path / "a.vmcore").write_bytes(b"x")
    (entry,) = triage([DumpSite(tmp_path / "a.vmcore", "file")], timeout=0.01)
    assert not entry.ok and str(entry.error) == "timed out after 0.01 s" and entry.error.stage == "timeout"


def test_crash_is_given_the_indexed_copy(tmp_path, monkeypatch):
    import shutil

    from kdebug.crash.index import indexed_path
    from kdebug.elf import file_build_id

    monkeypatch.setenv("KDEBUG_CACHE", str(tmp_path / "cache"))
    elf = Path(shutil.which("true") or "/bin/true")  # any ELF with a build-id stands in for a vmlinux
    bid = file_build_id(elf)
    assert bid
    copy = indexed_path(elf)
    assert copy is not None and copy.name == f"{bid}.vmlinux"
    shutil.copyfile(elf, copy)
    argv = tmp_path / "argv"
    fake = _fake(tmp_path, f'echo "$@" > {argv}')
    CrashProcess(elf, tmp_path / "vmcore", timeout=10, crash=fake).result()
    # crash -s VMLINUX VMCORE -i FILE: the copy, not the original
    assert argv.read_text().split()[1:3] == [str(copy), str(tmp_path / "vmcore")]


def test_a_run_started_ahead_serves_only_its_own_dump(tmp_path):
    fake = _fake(tmp_path, "exit 0")
    dump, other = tmp_path / "vmcore", tmp_path / "other"
    dump.write_bytes(b"d")
    other.write_bytes(b"o")
    (tmp_path / "link").symlink_to(dump)
    proc = CrashProcess(tmp_path, dump, timeout=10, crash=fake)
    assert proc.serves(tmp_path, tmp_path / "link")  # the same file by another name
    assert not proc.serves(tmp_path, other) and not proc.serves(tmp_path, tmp_path / "gone")
    assert not proc.serves(tmp_path / "other-vmlinux", dump) and not proc.serves(tmp_path, dump, "minimal")
    proc.cancel()


def test_triage_starts_the_largest_dump_first(tmp_path, monkeypatch):
    from kdebug.postmortem import triage as tr
    from kdebug.report.triage import TriageEntry, TriageError
    from kdebug.vmcore.layouts import DumpSite

    sites = []
    for name, size in (("small", 10), ("large", 30), ("middle", 20)):
        (tmp_path / name).write_bytes(b"x" * size)
        sites.append(DumpSite(tmp_path / name, "file"))
    started = []

    def fake(site, options, timeout, running):
        started.append(site.vmcore.name)
        return TriageEntry(site, 0.0, error=TriageError("stand-in", "internal"))

    monkeypatch.setattr(tr, "analyse", fake)
    entries = tr.triage(sites, jobs=1)
    assert started == ["large", "middle", "small"]
    assert [Path(e.path).name for e in entries] == ["small", "large", "middle"]  # in the order given
