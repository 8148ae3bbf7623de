"""Capture diagnoses on console text recorded from failures provoked for real
(tests/vm/test_capture_faults.py made these logs on the default kernel)."""

from pathlib import Path

from kdebug.capture import diagnose as cd

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "capture"


def test_capture_kernel_out_of_memory():
    log = (FIX / "capture-oom-64M.log").read_text()
    d = cd.after_trigger(log, exited=True, timed_out=False, kdump=True)
    assert d[0].code == "capture-oom"
    assert "crashkernel" in d[0].fix


def test_panic_without_capture_kernel():
    log = (FIX / "not-loaded.log").read_text()
    d = cd.after_trigger(log, exited=True, timed_out=False, kdump=True)
    assert d[0].code == "capture-not-loaded"
    assert d[0].evidence == "Kernel panic - not syncing: sysrq triggered crash"
    # The same console under the QEMU method means pvpanic did not fire.
    assert cd.after_trigger(log, exited=True, timed_out=False, kdump=False)[0].code == "no-pvpanic"


def test_kexec_eperm():
    d = cd.kexec_refused((FIX / "kexec-eperm.log").read_text())
    assert d.code == "kexec-lockdown"
    assert d.evidence == "kexec_file_load failed: Operation not permitted"


def test_kexec_other_refusals():
    assert cd.kexec_refused("kexec_file_load failed: Key was rejected by service").code == "kexec-signature"
    assert cd.kexec_refused("kexec_load failed: Function not implemented").code == "kexec-unsupported"
    assert cd.kexec_refused("Could not find a free area of memory of 0x9f000 bytes...").code == "kexec-no-room"
    assert cd.kexec_refused("", missing_binary=True).code == "kexec-missing"
    assert cd.kexec_refused("weird").code == "kexec-failed"


def test_capture_kernel_hang_and_no_panic():
    start = "[    0.000000] Linux version 6.1.0-56-cloud-amd64 (x) #1\n[    1.0] Run /init as init process\n"
    assert cd.after_trigger(start, exited=False, timed_out=True, kdump=True)[0].code == "capture-hang"
    assert cd.after_trigger("echo oops > /proc/kdebug_trigger\n", exited=False, timed_out=True,
                            kdump=True)[0].code == "no-panic"
    ready = start + "kdebug-init: ready role=main\n"
    assert cd.after_trigger(ready, exited=True, timed_out=False, kdump=True)[0].code == "no-vmcore"


def test_split_logs_at_the_capture_kernel():
    text = "Linux version A\nboot\n# echo c\nKernel panic - not syncing: x\n[ 0.0] Linux version B\nmore\n"
    main, capture = cd.split_logs(text, text.index("# echo c"))
    assert main.endswith("not syncing: x\n") and capture.startswith("[ 0.0] Linux version B")
    assert cd.split_logs(text[:30], 10) == (text[:30], "")


def test_transfer_cut_says_what_is_kept():
    d = cd.transfer_cut(123, "the stream stops", qemu_exited=True)
    assert "QEMU exited after 123 bytes" in d.cause and "vmcore.partial" in d.fix


def test_capture_shell_without_hook():
    text = "[ 0.0] Linux version 6.1\nRun /init\nkdebug-init: ready role=capture\n"
    assert cd.after_trigger(text, exited=True, timed_out=False, kdump=True)[0].code == "no-capture-hook"
