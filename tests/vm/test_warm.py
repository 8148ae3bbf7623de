"""Warm starts (kdebug.warm) against real guests: a restored guest answers
as a booted one does, its clock is the host's, two restores of one state
share no writable file, a bad state is one line and a cold boot, and a
capture that starts armed gives the report a cold one gives.

Each test saves into its own KDEBUG_WARM_DIR, so nothing here restores a
state another test (or a user) saved.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import need_tool, qemu_pids_for

KDEBUG = [sys.executable, "-m", "kdebug.cli.main"]


@pytest.fixture
def warm_dir(tmp_path, monkeypatch):
    need_tool("qemu-system-x86_64")
    d = tmp_path / "warm"
    monkeypatch.setenv("KDEBUG_WARM_DIR", str(d))
    monkeypatch.delenv("KDEBUG_WARM", raising=False)
    return d


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*KDEBUG, "run", *args], capture_output=True, text=True, timeout=timeout)


def states(warm_dir: Path) -> list[Path]:
    return [d for d in warm_dir.iterdir() if (d / "record.json").exists()]


#: What a guest's shell shows that does not depend on time: kernel, command
#: line, init's files, modules, the shell's own state.
SAME = ("uname -r; cat /proc/cmdline; ls / /bin | head -40; cut -d' ' -f1 /proc/modules | sort; "
        "echo $((6*7)); stty -a | head -1")


def test_warm_run_prints_what_a_cold_run_prints(warm_dir):
    first = run("--", SAME)
    assert first.returncode == 0, first.stderr
    assert "state" in first.stderr and "saved)" in first.stderr, first.stderr
    [state] = states(warm_dir)
    assert (state / "state").stat().st_mode & 0o777 == 0o400
    warm = run("--", SAME)
    assert f"warm (state {state.name}, saved " in warm.stderr, warm.stderr
    cold = run("--cold", "--", SAME)
    assert "(cold)" in cold.stderr
    assert warm.returncode == cold.returncode == 0
    assert warm.stdout == cold.stdout == first.stdout
    assert "6*7" not in warm.stdout and "42\n" in warm.stdout


def test_clock_and_uptime_sane_after_restore(warm_dir):
    run("--", "true")
    [state] = states(warm_dir)
    # The last kernel timestamp of the saved boot log: the guest's uptime
    # when it was saved is at least that.
    stamps = [float(m) for m in re.findall(r"^\[\s*(\d+\.\d+)\]", (state / "boot.log").read_text(), re.M)]
    assert stamps, "no kernel timestamps in the saved boot log"
    time.sleep(3)  # the saved wall clock falls behind the host's
    before = time.time()
    r = run("--", "date +%s; cut -d' ' -f1 /proc/uptime")
    after = time.time()
    assert "warm (state" in r.stderr, r.stderr
    date, uptime = r.stdout.split()
    assert before - 2 <= int(date) <= after + 2, (before, date, after)
    # The guest's uptime goes on from the save (QEMU's clock stops while the
    # guest is stopped, and the 3 s above are not in it): past the boot's
    # last line, not a minute more.
    assert stamps[-1] <= float(uptime) < stamps[-1] + 60, (uptime, stamps[-1])


def test_two_restores_of_one_state_share_no_writable_file(warm_dir, tmp_path):
    run("--", "true")
    [state] = states(warm_dir)
    # Each guest writes its own file, waits for the other, then lists /tmp.
    cmd = "echo {0} > /tmp/mine-{0}; sleep 6; ls /tmp | grep mine-"
    procs = [subprocess.Popen([*KDEBUG, "run", "--", cmd.format(n)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in ("a", "b")]
    fds: dict[int, list[tuple[str, int]]] = {}
    deadline = time.monotonic() + 120
    while len(fds) < 2 and time.monotonic() < deadline:
        for pid in qemu_pids_for(marker="-incoming"):
            if pid in fds or not any(qemu_pids_for(parent=p.pid) == [pid] for p in procs):
                continue
            time.sleep(1)  # restored and running its command
            fds[pid] = _open_files(pid)
        time.sleep(0.2)
    outs = [p.communicate(timeout=180) for p in procs]
    assert [o[0] for o in outs] == ["mine-a\n", "mine-b\n"], outs
    assert all(f"warm (state {state.name}" in o[1] for o in outs), outs
    assert len(fds) == 2, "did not see both restored QEMUs"
    written = []
    for pid, files in fds.items():
        for path, flags in files:
            if path.startswith(str(warm_dir)):
                assert flags & os.O_ACCMODE == os.O_RDONLY, (pid, path, oct(flags))
            elif flags & os.O_ACCMODE != os.O_RDONLY:
                written.append(path)
    assert len(written) == len(set(written)), written


def _open_files(pid: int) -> list[tuple[str, int]]:
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            flags = int((Path(f"/proc/{pid}/fdinfo") / fd.name).read_text().split("flags:")[1].split()[0], 8)
        except (OSError, IndexError, ValueError):
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")) and Path(target).is_file():
            out.append((target, flags))
    return out


def test_truncated_state_is_one_line_and_a_cold_boot(warm_dir):
    run("--", "true")
    [state] = states(warm_dir)
    f = state / "state"
    f.chmod(0o600)
    os.truncate(f, f.stat().st_size // 3)
    r = run("--", "echo still here")
    assert r.returncode == 0 and r.stdout == "still here\n", r.stderr
    said = [ln for ln in r.stderr.splitlines() if state.name in ln and "not used" in ln]
    assert len(said) == 1 and "truncated" in said[0], r.stderr
    assert "Traceback" not in r.stderr
    # saved again whole by that cold boot: the next run restores it
    again = run("--", "true")
    assert f"warm (state {state.name}" in again.stderr, again.stderr
    assert not qemu_pids_for(marker=str(warm_dir))


def test_warm_capture_gives_the_cold_report(warm_dir, tmp_path):
    need_tool("makedumpfile", "kexec")
    from kdebug.api import postmortem
    from kdebug.capture.api import capture
    from kdebug.capture.plan import CaptureOptions
    from kdebug.plan.prepare import LaunchOptions

    first = capture(LaunchOptions(), CaptureOptions(warm=True, out=tmp_path / "first"))
    # The capture kernel the first one chose (setup may finish a smaller one
    # meanwhile, which is another guest: another key).
    ck = first.capture_kernel or {}
    chosen = ck.get("tree") if ck.get("source") == "tree" else "crashed"
    warm = capture(LaunchOptions(), CaptureOptions(warm=True, out=tmp_path / "warm", capture_kernel=chosen))
    assert first.ok and warm.ok, (first.error, warm.error)
    assert first.start.startswith("cold (state ") and first.stage("save") is not None
    assert warm.start.startswith("warm (state ") and warm.stage("restore") and not warm.stage("boot")
    assert warm.warm["state"] in first.start
    saved = json.loads((warm.directory / "capture.json").read_text())
    assert saved["start"] == warm.start and saved["warm"]["state"] == warm.warm["state"]
    for cap in (first, warm):
        assert cap.check["complete"] and cap.check["tasks"] > 0, cap.check
    a, b = postmortem(first.directory, crash=False), postmortem(warm.directory, crash=False)
    assert (a.signature, a.panic.reason) == (b.signature, b.panic.reason)
    assert a.panic.task.comm == b.panic.task.comm
    assert a.tasks.complete and b.tasks.complete
    # The same guest: the same kernel threads and init; the shell's
    # subshells since the save are the only tasks that may differ.
    assert abs(a.tasks.total - b.tasks.total) <= 2, (a.tasks, b.tasks)
    assert a.system.release == b.system.release


def attach(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    need_tool("gdb")
    return subprocess.run([*KDEBUG, "attach", "--batch", *args], capture_output=True, text=True, timeout=timeout)


def test_warm_attach_sees_the_saved_guest_at_the_saved_offset(warm_dir, kernel):
    """An attach restored from the state the first attach saved: the same
    kernel threads and init, gdb's symbols at the offset the state recorded,
    which is the one the restored guest's IDT gives (no mismatch said), and
    the guest's memory at those symbols holds its own banner."""
    cmds = ["kd-ps --json", "p (char *)linux_banner"]
    ex = [a for c in cmds for a in ("--ex", c)]
    first = attach(*ex)
    assert first.returncode == 0, first.stderr
    [state] = states(warm_dir)
    assert f"cold (state {state.name} saved)" in first.stderr, first.stderr
    warm = attach(*ex)
    assert warm.returncode == 0, warm.stderr
    assert "guest restored in " in warm.stderr and f"(warm (state {state.name}, saved " in warm.stderr, warm.stderr
    assert "the saved state says KASLR offset" not in warm.stderr, warm.stderr
    assert "Traceback" not in first.stderr + warm.stderr
    recorded = json.loads((state / "record.json").read_text())["kaslr_offset"]
    offsets = [[int(m, 16) for m in re.findall(r"KASLR offset (0x[0-9a-f]+)", r.stderr)] for r in (first, warm)]
    assert recorded and offsets == [[recorded], [recorded]], (recorded, first.stderr, warm.stderr)
    banner = rf'^\$1 = 0x[0-9a-f]+ <linux_banner> "Linux version {re.escape(kernel.release)} '
    ps = []
    for r in (first, warm):
        assert re.search(banner, r.stdout, re.M), r.stdout[-1500:]
        [tasks] = [b for b in _json_arrays(r.stdout) if b and "comm" in b[0]]
        ps.append(tasks)
    # The tasks there at the save: kernel threads and init. The shell's
    # commands since (the restore's clock set, gdb's stop) may differ, and so
    # may workqueue workers: a pool starts one when its work queues up and
    # retires it when idle (kernel/workqueue.c, create_worker()), so the cold
    # guest's pools can grow between the save and its kd-ps (a kworker/u4:3
    # in one run only, seen once in a full run).
    kept = [{(t["pid"], t["comm"]) for t in tasks
             if (t["is_kthread"] and not t["comm"].startswith("kworker/")) or t["pid"] == 1}
            for tasks in ps]
    assert kept[0] == kept[1], (kept[0] ^ kept[1])
    assert (1, "init") in kept[1] and len(kept[1]) > 20, kept[1]


def _json_arrays(text: str) -> list:
    """The top-level JSON arrays gdb printed in ``text``, decoded."""
    dec, out, i = json.JSONDecoder(), [], 0
    while (i := text.find("\n[", i)) >= 0:
        try:
            val, i = dec.raw_decode(text, i + 1)
            out.append(val)
        except ValueError:  # gdb's own "[Inferior 1 ... detached]"
            i += 1
    return out
