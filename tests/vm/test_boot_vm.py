"""Boot the real default kernel under QEMU and check what the guest itself says."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from kdebug.errors import BootError
from kdebug.guest.qemu import READY, boot
from kdebug.plan.prepare import LaunchOptions, prepare
from kdebug.session import new_session
from tests.conftest import ROOT, need_tool, qemu_pids_for

KDEBUG = [sys.executable, "-m", "kdebug.cli.main"]


def test_uname_matches_kernel(shared_guest, kernel):
    r = shared_guest.run("uname -r")
    assert r.status == 0
    assert r.output.strip() == kernel.release


def test_exit_status_and_multiline_output(shared_guest):
    r = shared_guest.run("printf 'a\\nb\\n'; (exit 7)")
    assert r.output == "a\nb\n"
    assert r.status == 7
    assert shared_guest.run("true").status == 0
    assert shared_guest.run("false").status == 1


def test_crashkernel_reserved_as_asked(shared_guest):
    assert "crashkernel=128M" in shared_guest.run("cat /proc/cmdline").output.split()
    out = shared_guest.run("grep 'Crash kernel' /proc/iomem").output
    m = re.search(r"([0-9a-f]+)-([0-9a-f]+) : Crash kernel", out)
    assert m, out
    assert int(m.group(2), 16) - int(m.group(1), 16) + 1 == 128 << 20
    assert shared_guest.warnings == []


def _recipe_modules(kernel, named: set[str]) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """The recipe's modules and ``named`` that this kernel builds as modules,
    each with the modules it needs; and every module's alias patterns."""
    from kdebug.initramfs.modules import modname, parse_builtin, parse_modules_dep
    from kdebug.initramfs.recipe import load_recipe

    dep = parse_modules_dep((kernel.modules_dir / "modules.dep").read_text())
    builtin = parse_builtin((kernel.modules_dir / "modules.builtin").read_text())
    aliases: dict[str, list[str]] = {}
    for line in (kernel.modules_dir / "modules.alias").read_text().splitlines():
        if line.startswith("alias "):
            _, pattern, mod = line.split()
            aliases.setdefault(modname(mod), []).append(pattern)
    wanted = {n for n in [*load_recipe("busybox").modules, *named] if n in dep and n not in builtin}
    return {n: {modname(d) for d in dep[n][1]} - builtin for n in wanted}, aliases


def _modaliases(guest) -> list[str]:
    return guest.run("cat /sys/bus/*/devices/*/modalias").output.split()


def test_recipe_modules_load_for_the_devices_the_guest_has(shared_guest, kernel):
    """kdebug's /init loads a recipe driver (with what it needs) when the guest
    has a device it drives, and a module the user named always. The truth:
    the kernel's own modules.dep, modules.builtin and modules.alias, and the
    modaliases of the devices in the guest's /sys."""
    from fnmatch import fnmatchcase

    from tests.conftest import USER_MODULE

    mods = {line.split()[0] for line in shared_guest.run("cat /proc/modules").output.splitlines()}
    wanted, aliases = _recipe_modules(kernel, {USER_MODULE})
    devices = _modaliases(shared_guest)
    drives = {n for n in wanted if any(fnmatchcase(d, p) for d in devices for p in aliases.get(n, []))}
    expected = {USER_MODULE} | drives
    expected |= {d for n in expected for d in wanted[n]}
    loaded = {n for n in wanted if n in mods} | {d for n in wanted for d in wanted[n] if d in mods}
    assert expected == loaded, (expected, loaded)
    # The shared guest has a virtio disk, the ISA pvpanic and fw_cfg: the
    # drivers for them are among the loaded.
    assert {"qemu_fw_cfg", "pvpanic_mmio", "virtio_blk", USER_MODULE} <= loaded


def test_a_guest_without_the_devices_skips_their_drivers(kernel):
    """`kdebug run` with no disk and no pvpanic: virtio_blk and pvpanic_mmio
    stay out (a module the user names would not), qemu_fw_cfg is in."""
    r = subprocess.run([*KDEBUG, "run", "--release", kernel.release, "--", "cat /proc/modules"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    mods = {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
    wanted, _ = _recipe_modules(kernel, set())
    assert {"virtio_blk", "pvpanic_mmio", "qemu_fw_cfg"} <= set(wanted)
    assert "qemu_fw_cfg" in mods and not mods & {"virtio_blk", "pvpanic_mmio", "pvpanic_pci", "pvpanic"}, mods


def test_capture_kernel_files_in_initramfs(shared_guest, kernel):
    out = shared_guest.run("ls -l /kdump/vmlinuz && wc -c < /kdump/vmlinuz").output.split()
    assert int(out[-1]) == kernel.image.stat().st_size


def test_memory_and_cpus_as_planned(shared_guest):
    plan = shared_guest.prepared.plan
    assert int(shared_guest.run("nproc").output) == plan.cpus
    total_kb = int(shared_guest.run("awk '/MemTotal/ {print $2}' /proc/meminfo").output)
    assert plan.memory_mb * 1024 * 0.7 < total_kb <= plan.memory_mb * 1024


def _boot_expecting_failure(opts: LaunchOptions, timeout: float = 90) -> BootError:
    session = new_session()
    try:
        prep = prepare(opts, session)
        with pytest.raises(BootError) as ei:
            boot(prep.plan, session, timeout=timeout)
        assert qemu_pids_for(session.name) == [], "QEMU left running after a failed boot"
        return ei.value
    finally:
        session.remove()


def test_hello_recipe_prints_hello_then_hang_is_diagnosed():
    need_tool("qemu-system-x86_64", "gcc")
    session = new_session()
    try:
        prep = prepare(LaunchOptions(recipe="hello", gdb_port=0), session)
        with boot(prep.plan, session, ready=r"Hello world!", timeout=90) as guest:
            assert guest.alive()
            # hello never prints kdebug's ready line: waiting for it is a hang,
            # and the diagnosis quotes the last console lines.
            with pytest.raises(BootError) as ei:
                guest.wait_for(READY, timeout=3)
            assert ei.value.diagnoses[0].code == "hang"
            assert "Hello world!" in ei.value.diagnoses[0].evidence
        assert qemu_pids_for(session.name) == []
    finally:
        session.remove()


@pytest.mark.parametrize("init,code", [
    (None, "no-init"),
    (b"#!/bin/sh\necho bye\nexit 3\n", "init-exited"),
    (b"#!/no/such/shell\necho hi\n", "init-exec-failed"),
])
def test_broken_initramfs_is_diagnosed(tmp_path, init, code):
    need_tool("qemu-system-x86_64")
    from pathlib import Path

    from kdebug.initramfs.cpio import Archive

    arc = Archive()
    arc.add_node("dev/console", "c", 5, 1)
    arc.add_file("bin/busybox", Path("/bin/busybox").read_bytes(), 0o755)
    arc.add_symlink("bin/sh", "busybox")
    if init is not None:
        arc.add_file("init", init, 0o755)
    img = tmp_path / "broken.img"
    img.write_bytes(arc.to_cpio_gz())
    err = _boot_expecting_failure(LaunchOptions(initrd=img, gdb_port=0, memory="512M"))
    assert err.diagnoses[0].code == code, err.diagnoses
    assert err.log_path is not None


def test_crashkernel_that_does_not_fit_is_reported():
    need_tool("qemu-system-x86_64")
    session = new_session()
    try:
        # --append bypasses kdebug's own size check: the kernel itself refuses.
        prep = prepare(LaunchOptions(memory="512M", append=["crashkernel=2G"], gdb_port=0), session)
        with boot(prep.plan, session, timeout=90) as guest:
            assert [w.code for w in guest.warnings] == ["crashkernel-not-reserved"]
            assert "Crash kernel" not in guest.run("cat /proc/iomem").output
    finally:
        session.remove()


def test_ext4_root_image_boots_as_root(tmp_path, kernel):
    need_tool("qemu-system-x86_64", "mke2fs", "e2fsck", "debugfs")
    from kdebug.initramfs.build import build_ext4
    from kdebug.initramfs.recipe import load_recipe

    img = tmp_path / "root.img"
    res = build_ext4(load_recipe("busybox"), kernel, img, 64)
    assert "init" in res.files
    session = new_session()
    try:
        prep = prepare(LaunchOptions(rootfs=img, gdb_port=0), session)
        with boot(prep.plan, session, timeout=90) as guest:
            mounts = guest.run("cat /proc/mounts").output
            assert re.search(r"^/dev/vda / ext4 rw", mounts, re.M), mounts
            # the root really is the disk: a file written now lands in the image
            assert guest.run("echo persisted > /marker && sync").status == 0
    finally:
        session.remove()
    # The guest's sync commits the file to ext4's journal; the kernel writes it
    # to its home blocks only at a later checkpoint, which QEMU's stop may
    # precede. debugfs does not read the journal, so replay it first, as a
    # mount would (the full suite caught a stop before the checkpoint).
    import subprocess

    fsck = subprocess.run(["e2fsck", "-f", "-y", "-E", "journal_only", str(img)], capture_output=True, text=True)
    assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr
    r = subprocess.run(["debugfs", "-R", "cat /marker", str(img)], capture_output=True, text=True)
    assert r.stdout.strip() == "persisted"


def test_silent_kvm_falls_back_to_tcg():
    """On these machines /dev/kvm opens but a KVM guest hangs: a plan that chose
    KVM through "auto" must come up anyway, under TCG, and say so."""
    need_tool("qemu-system-x86_64")
    import dataclasses
    from pathlib import Path

    from kdebug.plan.accel import kvm_status

    if not Path("/dev/kvm").exists():
        pytest.skip("no /dev/kvm: QEMU would refuse KVM at once, nothing to fall back from")
    kvm_ok, _ = kvm_status()
    session = new_session()
    try:
        prep = prepare(LaunchOptions(gdb_port=0), session)
        plan = dataclasses.replace(prep.plan, accel="kvm", accel_fallback=True)
        with boot(plan, session, timeout=120) as guest:
            codes = [w.code for w in guest.warnings]
            if kvm_ok:
                assert guest.plan.accel == "kvm" and "kvm-failed" not in codes
            else:
                assert guest.plan.accel == "tcg" and "kvm-failed" in codes
            assert guest.run("true").status == 0
    finally:
        session.remove()


def test_kernel_messages_racing_the_ready_marker(tmp_path):
    """Kernel messages reach the serial port between 16-byte chunks of a
    process's output, so an echoed marker can be cut in two by one (seen in
    CI: a boot that waited for "kdebug-init: ready" until its timeout). A hook
    that floods printk while init prints the marker and kdebug sends its first
    commands must not matter; the guest's own dmesg shows the flood happened."""
    need_tool("qemu-system-x86_64")
    hook = tmp_path / "noise"
    hook.write_text('( i=0; while [ $i -lt 600 ]; do echo "<4>kdebug-noise-$i" > /dev/kmsg; '
                    'i=$((i + 1)); done ) &\n')
    session = new_session()
    try:
        prep = prepare(LaunchOptions(gdb_port=0, extra_files={"/etc/kdebug/init.d/50-noise": hook}),
                       session)
        with boot(prep.plan, session, timeout=60) as guest:
            assert guest.run("echo marker-$((6*7))", timeout=30).output == "marker-42\n"
            guest.run("while [ $(dmesg | grep -c kdebug-noise-) -lt 600 ]; do sleep 0.1; done",
                      timeout=30)
            assert guest.run("dmesg | grep -c kdebug-noise-").output.strip() == "600"
    finally:
        session.remove()
