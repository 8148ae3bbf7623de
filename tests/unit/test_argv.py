"""Golden tests of the QEMU command line: any change to it shows up here."""

import shlex
from pathlib import Path

import pytest

from kdebug.plan.argv import build_argv
from kdebug.plan.plan import Drive, LaunchPlan, SerialPort
from tests.golden import check_golden

PLANS = {
    "default": LaunchPlan(
        name="kdebug-t", image=Path("/boot/vmlinuz"), initrd=Path("/c/initrd.img"),
        cmdline="console=ttyS0,115200 panic=-1 crashkernel=128M", gdb_port=1234,
        firmware=Path("/usr/share/qemu/qboot.rom"),
        qmp_socket=Path("/run/s/qmp.sock"), console_log=Path("/run/s/console.log")),
    "interactive-freeze-kvm": LaunchPlan(
        name="kdebug-i", image=Path("/b/bzImage"), initrd=None, cmdline="console=ttyS0 nokaslr",
        accel="kvm", cpus=4, memory_mb=2048, interactive=True, freeze=True, gdb_port=4321,
        qmp_socket=Path("/run/s/qmp.sock"), console_log=Path("/run/s/console.log")),
    "capture-devices": LaunchPlan(
        name="kdebug-c", image=Path("/boot/vmlinuz"), initrd=Path("/c/i.img"), cmdline="console=ttyS0",
        gdb_port=None, qmp_socket=Path("/run/s/qmp.sock"), console_log=None, pvpanic=True,
        drives=(Drive(Path("/d/root.img"), "root"),),
        serial_ports=(SerialPort("org.kdebug.dump", Path("/run/s/dump.bin")),
                      SerialPort("org.kdebug.ctl", Path("/run/s/ctl.sock"), "socket"))),
    # A warm start (kdebug.warm): the default guest, waiting for its saved state.
    "warm-incoming": LaunchPlan(
        name="kdebug-w", image=Path("/boot/vmlinuz"), initrd=Path("/c/initrd.img"),
        cmdline="console=ttyS0,115200 panic=-1", gdb_port=1234,
        firmware=Path("/usr/share/qemu/qboot.rom"), incoming=True,
        qmp_socket=Path("/run/s/qmp.sock"), console_log=Path("/run/s/console.log")),
}


@pytest.mark.parametrize("name", sorted(PLANS))
def test_argv_golden(name):
    got = shlex.join(build_argv(PLANS[name])) + "\n"
    check_golden(f"argv-{name}.txt", got)


@pytest.mark.parametrize("name", sorted(PLANS))
def test_gdbstub_only_on_loopback(name):
    argv = build_argv(PLANS[name])
    assert "-s" not in argv
    for i, a in enumerate(argv):
        if a == "-gdb":
            assert argv[i + 1].startswith("tcp:127.0.0.1:")
        if a == "-qmp":
            assert argv[i + 1].startswith("unix:")


def test_always_no_reboot_and_vmcoreinfo():
    argv = build_argv(PLANS["default"])
    assert "-no-reboot" in argv
    assert argv[argv.index("-device") + 1] == "vmcoreinfo"


def test_firmware_from_the_profile_where_qemu_ships_it(tmp_path):
    from kdebug.plan.profile import find_firmware, load_profile

    assert load_profile().firmware == "qboot.rom"
    assert find_firmware(None, "/usr/bin/qemu-system-x86_64") is None
    # QEMU's own share/qemu beside its binary first, then Debian's
    (tmp_path / "bin").mkdir()
    (tmp_path / "share/qemu").mkdir(parents=True)
    qemu = tmp_path / "bin" / "qemu-system-x86_64"
    qemu.touch()
    assert find_firmware("nosuch.rom", str(qemu)) is None  # QEMU's default firmware then
    (tmp_path / "share/qemu/qboot.rom").write_bytes(b"\0")
    assert find_firmware("qboot.rom", str(qemu)) == tmp_path / "share/qemu/qboot.rom"
    assert "-bios" not in build_argv(PLANS["capture-devices"])
