"""Capture failures provoked for real: each stage that fails names itself,
gives its diagnosis, leaves capture.json saying so, and never leaves a file
called vmcore behind."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kdebug.capture.plan import UNSAFE_CRASHKERNEL_ENV, CaptureOptions, Timeouts
from kdebug.errors import CaptureError
from kdebug.plan.prepare import LaunchOptions
from kdebug.vmcore.info import read_dump
from tests.conftest import need_tool, qemu_pids_for


@pytest.fixture(autouse=True)
def _tools():
    need_tool("qemu-system-x86_64", "makedumpfile")


def _fail(out, base=None, **kw) -> CaptureError:
    from kdebug.capture.api import capture

    with pytest.raises(CaptureError) as ei:
        capture(base or LaunchOptions(crashkernel="auto"), CaptureOptions(out=out, **kw))
    e = ei.value
    assert e.directory == out
    data = json.loads((out / "capture.json").read_text())
    assert data["ok"] is False and data["vmcore"] is None
    assert data["failed_stage"] == e.failed_stage
    assert data["error"]["diagnoses"][0]["code"] == e.diagnoses[0].code
    assert not (out / "vmcore").exists()
    assert not qemu_pids_for(str(out))  # QEMU stopped on the failure path too
    return e


def test_no_capture_kernel_loaded(tmp_path):
    e = _fail(tmp_path / "c", skip_kexec=True)
    assert e.failed_stage == "capture-boot"
    assert e.diagnoses[0].code == "capture-not-loaded"
    assert "sysrq triggered crash" in e.diagnoses[0].evidence
    assert not (tmp_path / "c" / "vmcore.partial").exists()  # nothing arrived, nothing kept


def test_kexec_refused_by_the_kernel(tmp_path):
    # kexec_load_disabled makes the kernel refuse both kexec syscalls (EPERM),
    # as lockdown does. Through the CLI, as a user meets it.
    out = tmp_path / "c"
    r = subprocess.run([sys.executable, "-m", "kdebug.cli.main", "capture", "--out", str(out),
                        "--setup", "echo 1 > /proc/sys/kernel/kexec_load_disabled"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and r.stdout == ""
    assert "kdebug: error: stage load: kexec -p did not load the capture kernel" in r.stderr
    assert re.search(r"console: .*kexec_file_load failed: Operation not permitted", r.stderr), r.stderr
    assert f"logs and capture.json in {out} (no vmcore there)" in r.stderr
    data = json.loads((out / "capture.json").read_text())
    assert data["failed_stage"] == "load" and data["error"]["diagnoses"][0]["code"] == "kexec-lockdown"
    assert not (out / "vmcore").exists() and not qemu_pids_for(str(out))


def test_crashkernel_too_small_capture_kernel_oom(tmp_path, monkeypatch):
    monkeypatch.setenv(UNSAFE_CRASHKERNEL_ENV, "64M")
    # The cloud kernel as capture kernel: a small built one (--capture-kernel
    # auto) dumps within 64M, which this test shows as a success elsewhere.
    e = _fail(tmp_path / "c", base=LaunchOptions(), capture_kernel="crashed",
              timeouts=Timeouts(capture_boot=90))
    assert e.failed_stage == "capture-boot"
    log = (tmp_path / "c" / "console-capture.log").read_text()
    assert "crashkernel=64M" not in log.split("Kernel command line:")[-1].splitlines()[0]
    if e.diagnoses[0].code == "capture-hang":
        # Once in a full run the starved 6.1 kernel stopped without a word
        # (after its clocksource switch) instead of reporting the OOM: then
        # its own Memory: line must show it starved, and it never reached init.
        m = re.search(r"Memory: (\d+)K/\d+K available", log)
        assert m and int(m.group(1)) < 32 << 10 and "kdebug-init" not in log, log[-2000:]
        return
    assert e.diagnoses[0].code == "capture-oom", e.diagnoses
    assert "System is deadlocked on memory" in log or "Out of memory" in log


def test_qemu_killed_mid_transfer(tmp_path):
    out = tmp_path / "c"
    killed = []

    def killer():
        # The unfiltered ELF takes ~20 s to stream: kill QEMU once 20 MB arrived.
        deadline = time.monotonic() + 240
        part = out / "vmcore.partial"
        while time.monotonic() < deadline and not killed:
            if part.exists() and part.stat().st_size > 20 << 20:
                for pid in qemu_pids_for(str(out)):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.02)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    e = _fail(out, raw=True)
    t.join(5)
    assert killed, "the dump never started streaming"
    assert e.failed_stage == "dump"
    assert e.diagnoses[0].code == "transfer-cut"
    partial = out / "vmcore.partial"
    data = json.loads((out / "capture.json").read_text())
    assert data["partial"] == "vmcore.partial"
    assert stat.S_IMODE(partial.stat().st_mode) == 0o600
    chk = read_dump(partial)
    assert chk.format == "elf" and not chk.complete and "truncated" in chk.problem


def test_auto_falls_back_to_qemu_dump(tmp_path, kernel):
    from kdebug.capture.api import capture

    out = tmp_path / "c"
    cap = capture(LaunchOptions(crashkernel="auto", memory="512M"),
                  CaptureOptions(method="auto", out=out,
                                 setup=("echo 1 > /proc/sys/kernel/kexec_load_disabled",)))
    assert cap.ok and cap.method == "qemu" and cap.requested_method == "auto"
    assert cap.fallback.startswith("kdump failed at stage load")
    assert cap.format == "elf" and cap.vmcoreinfo["build_id_matches"]
    names = {p.name for p in out.iterdir()}
    assert {"vmcore", "capture.json", "console-main.log", "kdump-console-main.log"} <= names
    assert [s.name for s in cap.stages].count("boot") == 2  # both attempts are on record


def test_sigterm_mid_dump_stops_qemu_and_keeps_only_partial(tmp_path):
    out = tmp_path / "c"
    p = subprocess.Popen([sys.executable, "-m", "kdebug.cli.main", "capture", "--raw", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        part = out / "vmcore.partial"
        while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > 20 << 20):
            assert p.poll() is None, p.communicate()
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert not qemu_pids_for(str(out))
    data = json.loads((out / "capture.json").read_text())
    assert data["ok"] is False and data["failed_stage"] == "interrupted"
    assert data["partial"] == "vmcore.partial" and not (out / "vmcore").exists()
    assert not read_dump(out / "vmcore.partial").complete


def test_boot_failure_is_the_boot_stage_with_its_console(tmp_path):
    out = tmp_path / "c"
    e = _fail(out, base=LaunchOptions(crashkernel="auto", append=["rdinit=/nonexistent init=/nonexistent"]),
              timeouts=Timeouts(boot=60))
    assert e.failed_stage == "boot"
    # The foundation names it: no init could be run (rdinit= and init= both missing).
    assert e.diagnoses[0].code == "no-init"
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs" in (out / "console-main.log").read_text()
    assert not (out / "vmcore.partial").exists() and not (out / ".vmcore.stream").exists()


def test_dump_disk_round_trip_and_an_empty_disk(tmp_path, kernel, monkeypatch):
    """--via disk's host half on its own: the image kdebug makes is ext4 (e2fsck
    says clean), a file written into it by debugfs comes back byte for byte and
    private, and a disk the capture kernel never wrote is a named failure."""
    need_tool("mke2fs", "debugfs", "e2fsck")
    from kdebug.capture.kdump import make_dump_disk, read_dump_disk

    disk = tmp_path / "disk.img"
    make_dump_disk(disk, kernel)
    assert stat.S_IMODE(disk.stat().st_mode) == 0o600
    assert subprocess.run(["e2fsck", "-fn", str(disk)], capture_output=True).returncode == 0
    with pytest.raises(CaptureError) as ei:
        read_dump_disk(disk, tmp_path / "vmcore.partial")
    assert ei.value.diagnoses[0].code == "dump-disk-empty" and "no vmcore on the ext4 dump disk" in ei.value.message
    payload = os.urandom(300_000)
    (tmp_path / "src").write_bytes(payload)
    subprocess.run(["debugfs", "-w", "-R", "write src vmcore", str(disk)], cwd=tmp_path,
                   capture_output=True, check=True)
    out = tmp_path / "got"
    assert "300000 bytes" in read_dump_disk(disk, out)
    assert out.read_bytes() == payload and stat.S_IMODE(out.stat().st_mode) == 0o600
    # --out DIR relative to the working directory: both paths relative
    (tmp_path / "rel").mkdir()
    monkeypatch.chdir(tmp_path)
    assert "300000 bytes" in read_dump_disk(Path("disk.img"), Path("rel/got"))
    assert (tmp_path / "rel" / "got").read_bytes() == payload


def test_dump_disk_needs_a_built_in_ext4(tmp_path, kernel):
    import dataclasses

    from kdebug.capture.kdump import make_dump_disk
    from kdebug.kconfig import parse_kconfig

    modular = dataclasses.replace(kernel, config=parse_kconfig("CONFIG_EXT4_FS=m\n"))
    with pytest.raises(CaptureError, match=r"no built-in ext4 \(CONFIG_EXT4_FS=m\)"):
        make_dump_disk(tmp_path / "disk.img", modular)
    assert not (tmp_path / "disk.img").exists()


def test_module_trigger_needs_module_support(kernel):
    import dataclasses

    from kdebug.capture.module import trigger_module
    from kdebug.kconfig import parse_kconfig

    no_modules = dataclasses.replace(kernel, config=parse_kconfig("# CONFIG_MODULES is not set\n"))
    with pytest.raises(CaptureError, match="cannot load modules"):
        trigger_module(no_modules)
