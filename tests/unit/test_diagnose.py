"""Diagnoses on console logs recorded from real boots of the Debian kernel
(tests/fixtures/console/*.log, provoked with hand-made broken initramfs)."""

from pathlib import Path

import pytest

from kdebug.plan.diagnose import crashkernel_reserved, diagnose

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "console"


@pytest.mark.parametrize("log,code,words", [
    ("noinit", "no-init", "no /init"),
    ("exits", "init-exited", "exited with status 3"),
    ("interp", "init-exec-failed", "interpreter"),
    ("noexec", "init-exec-failed", "not executable"),
    ("noshebang", "init-exec-failed", "#! line"),
    ("misaligned", "initramfs-unpack", "4-byte boundary"),
    ("truncated", "initramfs-unpack", "truncated"),
])
def test_recorded_failures(log, code, words):
    d = diagnose((LOGS / f"{log}.log").read_text(errors="replace"))
    assert d, "no diagnosis"
    assert d[0].code == code
    assert words in d[0].cause


def test_signal_exit_code_decoded():
    d = diagnose("Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b")
    assert "killed by signal 11" in d[0].cause


def test_elf_kernel_from_qemu_stderr():
    d = diagnose("", qemu_stderr="linux kernel too old to load a ram disk")
    assert d[0].code == "elf-kernel" and "bzImage" in d[0].fix


def test_root_device_without_driver():
    d = diagnose('VFS: Cannot open root device "vda" or unknown-block(0,0): error -6\n'
                 "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)")
    assert d[0].code == "root-device-missing" and "virtio_blk" in d[0].cause


def test_crashkernel_missing_only_when_asked():
    log = "[0.0] Linux version 6.1\n[0.1] Run /init as init process\n"
    assert diagnose(log) == []
    d = diagnose(log, expect_crashkernel=True)
    assert d[0].code == "crashkernel-not-reserved"
    ok = log + "Reserving 128MB of memory at 848MB for crashkernel (System RAM: 1023MB)\n"
    assert diagnose(ok, expect_crashkernel=True) == []


@pytest.mark.parametrize("log", ["boot-crashkernel-6.1", "boot-crashkernel-6.12"])
def test_crashkernel_reserved_on_either_kernel_generation(log):
    """6.1 says "Reserving 128MB of memory at 864MB for crashkernel", 6.12
    "crashkernel reserved: 0x... - 0x... (128 MB)": both are a reservation."""
    console = (LOGS / f"{log}.log").read_text()
    assert crashkernel_reserved(console)
    assert diagnose(console, expect_crashkernel=True) == []


def test_crashkernel_refused_on_either_kernel_generation():
    # crashkernel=2G in a 1 GiB guest: 6.1 says why, 6.12 says nothing.
    failed = diagnose((LOGS / "boot-crashkernel-failed-6.1.log").read_text(), expect_crashkernel=True)
    assert [d.code for d in failed] == ["crashkernel-not-reserved"]
    assert failed[0].evidence == "crashkernel reservation failed - No suitable area found."
    silent = (LOGS / "boot-crashkernel-silent-6.12.log").read_text()
    assert not crashkernel_reserved(silent)
    assert [d.code for d in diagnose(silent, expect_crashkernel=True)] == ["crashkernel-not-reserved"]
    generic = "[    0.000000] cannot allocate crashkernel (size:0x80000000)\n"
    assert diagnose(generic)[0].evidence == "cannot allocate crashkernel (size:0x80000000)"


def test_hang_and_silence():
    d = diagnose("line one\nline two\n", timed_out=True)
    assert d[0].code == "hang" and "line two" in d[0].evidence
    assert diagnose("", timed_out=True)[0].code == "no-output"


def test_capture_kernel_oom():
    d = diagnose("Kernel panic - not syncing: System is deadlocked on memory")
    assert d[0].code == "out-of-memory" and "crashkernel" in d[0].fix


def test_healthy_boot_has_no_diagnosis():
    assert diagnose("[0.0] Linux version\nkdebug-init: ready role=main\n") == []
