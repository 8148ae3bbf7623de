"""The pure parts of a capture: command lines, options, output directory,
stage clock, capture.json, the trigger table."""

import json
import re
import stat

import pytest

from kdebug.capture.plan import CaptureOptions, StageClock, capture_cmdline, make_out_dir
from kdebug.capture.record import SCHEMA, Capture, load_capture, write_capture_json
from kdebug.capture.triggers import TRIGGERS, get_trigger
from kdebug.errors import CaptureError, GuestError, UsageError
from kdebug.plan.prepare import LaunchOptions


def test_capture_cmdline_drops_crashkernel_and_adds_kdump_args():
    c = capture_cmdline("console=ttyS0,115200 panic=-1 crashkernel=128M nokaslr", raw=False,
                        dump_level=31, compression="lzo")
    assert c.split() == ["console=ttyS0,115200", "panic=-1", "nokaslr", "irqpoll", "nr_cpus=1",
                         "reset_devices", "pty.legacy_count=0", "kdebug.dump=flat", "kdebug.level=31",
                         "kdebug.comp=lzo"]


def test_capture_cmdline_raw_and_idempotent():
    once = capture_cmdline("console=ttyS0 crashkernel=256M", raw=True, dump_level=1, compression="zlib")
    assert once.split() == ["console=ttyS0", "irqpoll", "nr_cpus=1", "reset_devices", "pty.legacy_count=0",
                            "kdebug.dump=elf"]
    assert capture_cmdline(once, raw=True, dump_level=1, compression="zlib") == once


@pytest.mark.parametrize("kw", [{"method": "kexec"}, {"dump_level": 32}, {"compression": "zstd"}])
def test_bad_options(kw):
    with pytest.raises(UsageError):
        CaptureOptions(**kw).validate()


def test_out_dir_default_is_new_and_private(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = make_out_dir(None), make_out_dir(None)
    assert a != b and a.parent == tmp_path and a.name.startswith("kdebug-capture-")
    assert stat.S_IMODE(a.stat().st_mode) == 0o700


def test_out_dir_refuses_to_mix_captures(tmp_path):
    (tmp_path / "vmcore").write_bytes(b"x")
    with pytest.raises(UsageError, match="already holds vmcore"):
        make_out_dir(tmp_path)
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(UsageError):
        make_out_dir(f)


def test_stage_clock_records_success_and_failure(tmp_path):
    cap = Capture(directory=tmp_path, method="kdump", requested_method="kdump", trigger="sysrq")
    clock = StageClock(cap)
    with clock.stage("boot") as st:
        st.detail = "fine"
    with pytest.raises(CaptureError) as ei, clock.stage("load"):
        raise GuestError("shell gone", hint="look")
    assert ei.value.failed_stage == "load" and ei.value.directory == tmp_path
    assert [(s.name, s.ok) for s in cap.stages] == [("boot", True), ("load", False)]
    assert cap.failed_stage == "load" and cap.error["message"] == "shell gone"
    assert not cap.ok


def test_capture_json_round_trip_and_mode(tmp_path):
    cap = Capture(directory=tmp_path, method="kdump", requested_method="auto", trigger="oops",
                  kernel={"release": "6.1", "build_id": "ab", "vmlinux": "/v"}, vmcore="vmcore",
                  format="kdump", dump_level=31, compression="lzo", sizes={"vmcore": 10})
    StageClock(cap).stage("boot").__enter__()
    path = write_capture_json(cap)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA and data["ok"] is True and data["vmcore"] == "vmcore"
    assert data["kernel"]["vmlinux"] == "/v" and "directory" not in data
    back = load_capture(tmp_path)
    assert back.vmcore_path == tmp_path / "vmcore" and back.vmlinux == "/v" and back.ok


def test_schema_keys_are_documented():
    import kdebug.capture.record as rec

    cap = Capture(directory=None, method="qemu", requested_method="qemu", trigger="sysrq")
    keys = set(cap.to_dict())
    documented = set(re.findall(r"^(\w+)\s{2,}", rec.__doc__, re.M))
    assert keys <= documented, keys - documented


def test_every_trigger_is_complete():
    for t in TRIGGERS.values():
        assert bool(t.console) != bool(t.qmp), t.name
        re.compile(t.panic)
        if t.module:
            assert "insmod /lib/kdebug/kdebug_trigger.ko" in t.setup_commands()
            assert "/proc/kdebug_trigger" in t.console
    assert get_trigger("oops").setup_commands()[0] == "echo 1 > /proc/sys/kernel/panic_on_oops"
    assert get_trigger("anything", run="echo c > /proc/sysrq-trigger").name == "run"
    with pytest.raises(UsageError):
        get_trigger("nope")


def test_module_source_handles_every_module_trigger():
    from kdebug.capture.module import SOURCE_DIR

    src = (SOURCE_DIR / "kdebug_trigger.c").read_text()
    for t in TRIGGERS.values():
        if t.module:
            word = t.console.split()[1]
            assert f'strcmp(word, "{word}")' in src, word


def test_preflight_refuses_a_kernel_without_kexec():
    from types import SimpleNamespace

    from kdebug.capture.plan import preflight
    from kdebug.kconfig import parse_kconfig

    good = "CONFIG_KEXEC=y\nCONFIG_CRASH_DUMP=y\nCONFIG_PROC_VMCORE=y\n"
    preflight(SimpleNamespace(release="t", config=parse_kconfig(good)))
    preflight(SimpleNamespace(release="t", config=parse_kconfig("")))  # unknown: let the guest say
    file_only = "# CONFIG_KEXEC is not set\nCONFIG_KEXEC_FILE=y\nCONFIG_CRASH_DUMP=y\nCONFIG_PROC_VMCORE=y\n"
    preflight(SimpleNamespace(release="t", config=parse_kconfig(file_only)))
    with pytest.raises(CaptureError, match="CONFIG_KEXEC, CONFIG_PROC_VMCORE not set"):
        preflight(SimpleNamespace(release="t", config=parse_kconfig("CONFIG_CRASH_DUMP=y\n")))


def test_preflight_passes_the_default_kernel(default_kernel):
    from kdebug.capture.plan import preflight

    preflight(default_kernel)


def test_hook_markers_need_the_whole_number():
    # pexpect matches while text still arrives: a number cut mid-way must not match.
    from kdebug.capture.kdump import DONE, START

    assert not START.search("kdebug-capture: start size=98")
    assert START.search("kdebug-capture: start size=980492288 port=/dev/vport0p1").group(1) == "980492288"
    assert not DONE.search("kdebug-capture: done status=1")
    assert DONE.search("kdebug-capture: done status=12\r\n").group(1) == "12"
    assert DONE.search("[   10.123456] kdebug-capture: done status=0\r\n").group(1) == "0"


def test_hook_script_prints_the_markers():
    from kdebug.capture.steps import HOOK

    text = HOOK.read_text()
    # Through the kernel log (init's kd_say), so no kernel message cuts them.
    assert 'kd_say "kdebug-capture: start size=$(stat -c %s /proc/vmcore) port=' in text
    assert 'kd_say "kdebug-capture: done status=$kd_st"' in text
    assert "echo \"kdebug-" not in text


def test_capture_cmdline_names_the_dump_disk():
    from kdebug.capture.plan import disk_name

    c = capture_cmdline("console=ttyS0", raw=False, dump_level=31, compression="lzo", disk=disk_name(1))
    assert c.split()[-1] == "kdebug.disk=vdb"
    with pytest.raises(UsageError):
        CaptureOptions(via="9p").validate()


def _capture_devices(lopts: LaunchOptions) -> str | None:
    return next((a for a in lopts.append if a.startswith("kdebug.capture_devices=")), None)


def test_devices_only_the_capture_kernel_uses_get_no_driver_in_the_first(tmp_path):
    """The dump port (and a --via disk disk) is left to the capture kernel,
    unless something of the user's shares its driver."""
    from kdebug.capture.plan import DUMP_DISK_DEVICES, DUMP_PORT_DEVICES
    from kdebug.capture.steps import launch_options
    from kdebug.plan.plan import SerialPort

    def arg(base, **kw):
        return _capture_devices(launch_options(base, None, get_trigger("sysrq"), **kw))

    port, disk = tmp_path / "stream", tmp_path / "disk.img"
    assert arg(LaunchOptions(), stream=port) == "kdebug.capture_devices=" + ",".join(DUMP_PORT_DEVICES)
    assert arg(LaunchOptions(), stream=port, disk=disk).split("=", 1)[1].split(",") == [
        *DUMP_PORT_DEVICES, *DUMP_DISK_DEVICES]
    assert arg(LaunchOptions(drives=[tmp_path / "mine.img"]), stream=port, disk=disk).endswith(
        ",".join(DUMP_PORT_DEVICES))
    assert arg(LaunchOptions(rootfs=tmp_path / "root.ext4"), disk=disk) is None
    assert arg(LaunchOptions(serial_ports=[SerialPort("mine", tmp_path / "p")]), stream=port) is None
    assert arg(LaunchOptions()) is None  # --method qemu: nothing for a capture kernel
    # the capture kernel's own command line drops it
    first = f"console=ttyS0 {arg(LaunchOptions(), stream=port)}"
    assert "capture_devices" not in capture_cmdline(first, raw=False, dump_level=31, compression="lzo")


@pytest.mark.parametrize("modalias, later", [
    ("pci:v00001AF4d00001003sv00001AF4sd00000003bc07sc80i00", True),  # virtio-serial-pci, transitional
    ("pci:v00001AF4d00001043sv00001AF4sd00001100bc07sc80i00", True),  # and modern
    ("virtio:d00000003v00001AF4", True),
    ("pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", False),  # a user's virtio-blk
    ("virtio:d00000002v00001AF4", False),
    ("acpi:QEMU0002:", False),
])
def test_init_matches_the_capture_devices_as_kdebug_names_them(modalias, later, tmp_path):
    """/init's own matcher, run by busybox sh on the command line kdebug writes."""
    import shutil
    import subprocess

    from kdebug.capture.plan import DUMP_PORT_DEVICES, capture_devices_arg
    from kdebug.resources import launch_path
    from tests.conftest import need_tool

    need_tool("busybox")
    init = launch_path("initramfs", "busybox-init.sh").read_text()
    matcher = init[init.index("root= loglevel= kd_later="):init.index("kd_devs= kd_stale=1")]
    # a file named like a pattern must not change how the command line splits
    (tmp_path / "virtio:d00000003vX").touch()
    script = (f"kd_cmdline='console=ttyS0 {capture_devices_arg(DUMP_PORT_DEVICES)} panic=-1'\n"
              f"{matcher}kd_for_later '{modalias}' && echo later || echo now\n")
    r = subprocess.run([shutil.which("busybox"), "sh", "-c", script], capture_output=True, text=True,
                       cwd=tmp_path, timeout=10)
    assert r.stdout.strip() == ("later" if later else "now"), r.stderr
