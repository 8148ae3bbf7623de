"""The fault matrix, provoked for real through the CLI as a user meets it:
the output directory full, read-only or removed; QEMU killed at boot; a
second command in the same --out; SIGINT/SIGHUP at boot and at the trigger.
Each ends in one line naming the fault, its exit status (kdebug.errors: 1,
74 for an output fault, 130 when interrupted), no QEMU left, no vmcore
called good, capture.json telling what happened where it fits, 0600/0700.

tests/vm/test_capture_faults.py has the others (QEMU killed and SIGTERM
mid-dump, boot and capture-kernel failures). Every test here boots and the
faults do not depend on the kernel, so they run on the default kernel only
(``one_kernel``); the read-only refusal boots nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdebug.vmcore.info import read_dump
from tests.conftest import need, need_tool, qemu_pids_for

pytestmark = pytest.mark.one_kernel


@pytest.fixture(autouse=True)
def _tools():
    need_tool("qemu-system-x86_64", "makedumpfile", "mount")


@pytest.fixture
def small_fs(tmp_path):
    """An 8 MB tmpfs: room for the logs and capture.json, not for a dump."""
    need(os.geteuid() == 0, "mounting a small tmpfs needs root")
    d = tmp_path / "small"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(d)], check=True)
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def _kdebug(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kdebug.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def _finish(p: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    try:
        _, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
    return p.returncode, err


def _record(out: Path) -> dict:
    data = json.loads((out / "capture.json").read_text())
    assert data["ok"] is False and data["vmcore"] is None
    assert not (out / "vmcore").exists()
    assert not qemu_pids_for(str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for f in out.iterdir():
        assert not f.name.endswith(".tmp"), f  # nothing half-written left
        if f.is_file():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    return data


def _wait_for(cond, p: subprocess.Popen, timeout: float = 300, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert p.poll() is None, (what, p.communicate())
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_full_disk_during_the_dump(small_fs):
    """The headline: was a 300 s hang, then `internal error: OSError`."""
    out = small_fs / "c"
    t = time.monotonic()
    rc, err = _finish(_kdebug("capture", "--out", str(out)))
    took = time.monotonic() - t
    assert rc == 74, err
    first = err.splitlines()[0]
    assert first.startswith(f"kdebug: error: stage dump: no space left on {out} while writing the dump: "
                            "it needs more than the "), err
    assert "free space or choose --out elsewhere" in first and "internal error" not in err
    data = _record(out)
    assert data["failed_stage"] == "dump" and data["error"]["diagnoses"][0]["code"] == "output-full"
    assert data["partial"] is None and not (out / "vmcore.partial").exists()
    assert not (out / ".vmcore.stream").exists()  # the cut stream was removed: it freed the space
    assert (out / "console-main.log").stat().st_size > 0 and data["unwritten"] == {}
    dump = next(s for s in data["stages"] if s["name"] == "dump")
    assert dump["seconds"] < 30 and took < 400, (dump, took)  # no dump-timeout wait


def test_read_only_output_is_refused_before_booting(small_fs):
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    t = time.monotonic()
    rc, err = _finish(_kdebug("capture", "--out", str(small_fs / "c")), timeout=120)
    assert rc == 74, err
    assert err.splitlines() == [f"kdebug: error: {small_fs} is on a read-only file system while writing "
                                "the directory c (choose --out elsewhere)"]
    assert time.monotonic() - t < 60 and not qemu_pids_for(str(small_fs))


def test_output_removed_during_the_dump(tmp_path):
    out = tmp_path / "c"
    p = _kdebug("capture", "--raw", "--out", str(out))
    stream = out / "vmcore.partial"
    _wait_for(lambda: stream.exists() and stream.stat().st_size > 20 << 20, p, what="the dump streaming")
    shutil.rmtree(out)
    rc, err = _finish(p)
    assert rc == 74, err
    first = err.splitlines()[0]
    assert first.startswith(f"kdebug: error: stage dump: {out} was removed while kdebug wrote to it"), err
    assert "capture.json not written" in first and "leave the output directory in place" in first
    assert not out.exists() and not qemu_pids_for(str(out))


def test_qemu_killed_at_boot(tmp_path):
    out = tmp_path / "c"
    p = _kdebug("capture", "--cold", "--out", str(out))  # a warm start restores in ~0.2 s: no boot to cut
    _wait_for(lambda: qemu_pids_for(str(out)), p, what="QEMU")
    time.sleep(1)  # booting
    for pid in qemu_pids_for(str(out)):
        os.kill(pid, signal.SIGKILL)
    rc, err = _finish(p)
    assert rc == 1 and err.startswith("kdebug: error: stage boot: QEMU was killed by SIGKILL before the guest "
                                      "was ready (something outside kdebug stopped it"), err
    data = _record(out)
    assert data["failed_stage"] == "boot"


def test_second_command_in_the_same_out_then_sighup_at_boot(tmp_path):
    out = tmp_path / "c"
    first = _kdebug("capture", "--out", str(out))
    _wait_for(lambda: qemu_pids_for(str(out)), first, what="the first capture's QEMU")
    rc, err = _finish(_kdebug("capture", "--out", str(out)), timeout=120)
    assert rc == 1, err
    assert err.splitlines() == [f"kdebug: error: --out {out} is in use by another kdebug command "
                                "(wait for it to finish, or choose another --out)"]
    assert (out / ".vmcore.stream").exists()  # the first one's files untouched
    first.send_signal(signal.SIGHUP)
    rc, err = _finish(first, timeout=120)
    assert rc == 130 and "interrupted" in err, err
    data = _record(out)
    assert data["failed_stage"] == "interrupted"
    assert not (out / ".vmcore.stream").exists() and not (out / "vmcore.partial").exists()


def test_sigint_at_the_trigger(tmp_path):
    out, rt = tmp_path / "c", tmp_path / "rt"
    rt.mkdir(mode=0o700)
    p = _kdebug("capture", "--out", str(out), "--run", "sleep 60", env={"KDEBUG_RUNTIME_DIR": str(rt)})

    def running() -> bool:
        return any("kdebug-run: start" in f.read_text(errors="replace")
                   for f in rt.glob("sessions/*/console.log"))

    _wait_for(running, p, what="the --run command to start")
    p.send_signal(signal.SIGINT)
    t = time.monotonic()
    rc, err = _finish(p, timeout=60)
    assert rc == 130 and err.strip().endswith("kdebug: interrupted; guest stopped"), err
    assert time.monotonic() - t < 15
    data = _record(out)
    assert data["failed_stage"] == "interrupted"
    assert [s["name"] for s in data["stages"]][-1] in ("arm", "load")  # the panic stage never ended


#: --setup for a cold capture: an /init hook appended to the capture
#: kernel's initramfs (a cpio member, 4-byte aligned, after the gzip one)
#: that kills makedumpfile with SIGKILL as soon as it runs.
KILL_MAKEDUMPFILE = (
    "mkdir -p /tmp/k/etc/kdebug/init.d && "
    "echo '(while ! pidof makedumpfile >/dev/null; do sleep 0.05; done; kill -9 $(pidof makedumpfile)) &' "
    "> /tmp/k/etc/kdebug/init.d/40-kill && "
    "s=$(stat -c %s /kdump/initrd.img) && head -c $(( (4 - s % 4) % 4 )) /dev/zero >> /kdump/initrd.img && "
    "cd /tmp/k && find etc | cpio -o -H newc >> /kdump/initrd.img")


def test_makedumpfile_killed_in_the_capture_kernel(tmp_path):
    out = tmp_path / "c"
    # --cold: a warm start loads the capture kernel before --setup runs.
    rc, err = _finish(_kdebug("capture", "--cold", "--out", str(out), "--setup", KILL_MAKEDUMPFILE))
    assert rc == 1, err
    assert err.startswith("kdebug: error: stage dump: makedumpfile in the capture kernel failed (status 137)"), err
    data = _record(out)
    assert data["failed_stage"] == "dump"
    assert "Killed" in (out / "console-capture.log").read_text() or "137" in data["error"]["message"]
    if (out / "vmcore.partial").exists():  # what arrived before the kill, never called vmcore
        assert data["partial"] == "vmcore.partial" and not read_dump(out / "vmcore.partial").complete


def test_qemu_dump_that_cannot_fit_is_refused_before_it_starts(small_fs):
    out = small_fs / "c"
    rc, err = _finish(_kdebug("capture", "--method", "qemu", "--memory", "512M", "--out", str(out)))
    assert rc == 74, err
    assert err.startswith(f"kdebug: error: stage dump: no space left on {out} while writing the dump: "
                          "it needs about 537 MB (free space or choose --out elsewhere)"), err
    data = _record(out)
    assert data["failed_stage"] == "dump" and data["error"]["diagnoses"][0]["code"] == "output-full"
    assert not (out / "vmcore.partial").exists() and (out / "console-main.log").stat().st_size > 0


def test_a_kernel_flood_stays_out_of_a_commands_output(shared_guest):
    """KERN_EMERG records written without pause from before a command ends
    until the next command stops them, so they are printed while the shell
    prints the command's output (600 lines, every third shaped like a
    kernel record, as dmesg prints): the output is exactly the command's
    lines, the status is its own, and the console log holds every record,
    some of them inside the command's output (else the test proved nothing)."""
    g = shared_guest
    start = len(g.transcript)
    r = g.run('rm -f /tmp/flood.*; (i=0; while [ ! -e /tmp/flood.stop ] && [ $i -lt 5000 ]; do i=$((i + 1)); '
              'echo "<0>kdebug flood line $i" > /dev/kmsg; [ $i = 1 ] && touch /tmp/flood.started; done; '
              'echo $i > /tmp/flood.done) & '
              'while [ ! -e /tmp/flood.started ]; do sleep 0.01; done; '
              'for i in $(seq 600); do [ $((i % 3)) = 0 ] && echo "[    1.000000] own line $i \\[" '
              '|| echo "own line $i"; done; exit 3', timeout=120)
    assert r.status == 3
    want = [f"[    1.000000] own line {i} \\[" if i % 3 == 0 else f"own line {i}" for i in range(1, 601)]
    assert r.output.splitlines() == want, r.output[-2000:]
    n = g.run("touch /tmp/flood.stop; while [ ! -e /tmp/flood.done ]; do sleep 0.1; done; cat /tmp/flood.done; "
              "dmesg | grep -c 'kdebug flood line'", timeout=120).output.split()
    assert n[0] == n[1], n  # the guest's own log has every record the flood wrote
    console = g.transcript[start:]
    assert all(f"kdebug flood line {i}\r" in console for i in range(1, int(n[0]) + 1))
    between = console[console.index("own line"):console.rindex("own line")]  # records cut lines too
    assert "kdebug flood line" in between, "no record was printed inside the output"


def test_a_background_job_prints_into_no_later_command(shared_guest):
    """A job left running by one command: that command returns at once with
    its own output, and what the job prints later is nobody's output."""
    g = shared_guest
    r = g.run("(sleep 2; echo late from the job) & echo started", timeout=30)
    assert (r.status, r.output) == (0, "started\n")
    assert r.seconds < 2, r.seconds
    r = g.run("sleep 3; echo next", timeout=30)
    assert (r.status, r.output) == (0, "next\n")


def test_a_shell_that_stops_reading_is_a_timeout_not_a_hang():
    """The guest's shell stops (SIGSTOP from the command itself): nothing reads
    its input any more. `kdebug run` ends at --cmd-timeout with one line and
    exit 125 (kdebug's own failure), and no QEMU is left."""
    p = _kdebug("run", "--cold", "--cmd-timeout", "10", "--", "echo before; kill -STOP $$")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 125, err
    errors = [ln for ln in err.splitlines() if ln.startswith("kdebug: error:")]
    assert len(errors) == 1 and "did not finish within 10 s" in errors[0], err
    assert "Traceback" not in err
    assert not qemu_pids_for(f"-{p.pid}\0")  # -name kdebug-kd-DATE-PID


def test_a_first_line_the_shell_swallows_is_typed_again(kernel):
    """The first line kdebug types into a new shell is lost (here a `read`
    typed before it takes it): kdebug types it again until the shell
    answers, runs the command, and says so in a warning."""
    from kdebug.guest.qemu import boot
    from kdebug.plan.prepare import LaunchOptions, prepare
    from kdebug.session import new_session

    session = new_session()
    try:
        with boot(prepare(LaunchOptions(release=kernel.release), session).plan, session, timeout=120) as g:
            g.send("read -r swallowed")
            r = g.run("echo hi", timeout=30)
            assert (r.status, r.output) == (0, "hi\n")
            assert [w.code for w in g.warnings if w.code == "shell-retyped"] == ["shell-retyped"]
            assert g.run("echo \"$swallowed\" | grep -c __KD_W_").output == "1\n"  # what the read took
    finally:
        session.remove()
