"""--tree with modules: the debug tree built with launch/kconfig/modules.config
(virtio_console, virtio_blk, qemu_fw_cfg and pvpanic as modules) boots with
its modules taken from modules.order, no modules_install; the QEMU-method
capture, which needs qemu_fw_cfg and pvpanic loaded, works on it."""

from __future__ import annotations

import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, need_tool

pytestmark = pytest.mark.one_kernel  # boots a build tree, not a distro kernel

#: What a tree clone needs to boot (everything but the modules).
TREE_FILES = ("arch/x86/boot/bzImage", "vmlinux", ".config", "include/config/kernel.release",
              "modules.builtin", "modules.builtin.modinfo")


def _order(tree: Path) -> list[str]:
    """modules.order as the kernel names modules (the test's own reading)."""
    lines = (tree / "modules.order").read_text().split()
    return [Path(x).name.rsplit(".", 1)[0].replace("-", "_") for x in lines]


def _wanted_from(tree: Path) -> set[str]:
    """The busybox recipe's modules that this tree builds as modules."""
    from kdebug.initramfs.recipe import load_recipe

    return {m.replace("-", "_") for m in load_recipe("busybox").modules} & set(_order(tree))


def _loaded(tree: Path, work: Path, command: str = "cat /proc/modules") -> str:
    """``command``'s output in a guest of ``tree`` that has a device for each
    of the recipe's drivers (a virtio disk and serial port, the ISA pvpanic)
    and names pvpanic_pci, which has none: kdebug's /init loads them all."""
    need_tool("qemu-system-x86_64")
    from kdebug.guest.qemu import boot
    from kdebug.plan.plan import SerialPort
    from kdebug.plan.prepare import LaunchOptions, prepare
    from kdebug.session import new_session

    disk = work / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    session = new_session()
    try:
        prep = prepare(LaunchOptions(tree=tree, gdb_port=0, drives=[disk], pvpanic=True,
                                     serial_ports=[SerialPort("org.kdebug.test", work / "port.out")],
                                     extra_modules=["pvpanic_pci"]), session)
        with boot(prep.plan, session, timeout=120) as guest:
            return guest.run(command).output
    finally:
        session.remove()


def test_modules_from_modules_order_load(sanitizer_tree, tmp_path):
    wanted = _wanted_from(sanitizer_tree)
    # the fragment made these modules: the test means nothing otherwise
    assert {"virtio_console", "virtio_blk", "qemu_fw_cfg", "pvpanic_mmio", "pvpanic"} <= set(_order(sanitizer_tree))
    assert not (sanitizer_tree / "modules.dep").exists()  # no modules_install was run in the tree
    loaded = {line.split()[0] for line in _loaded(sanitizer_tree, tmp_path).splitlines() if line.strip()}
    # pvpanic is a dependency of pvpanic_mmio/pvpanic_pci, loaded first from modules.dep
    assert loaded == wanted | {"pvpanic"}


def test_qemu_capture_on_tree_modules(sanitizer_tree, tmp_path):
    need_tool("qemu-system-x86_64")
    from kdebug import elf
    from kdebug.capture.api import capture
    from kdebug.capture.plan import CaptureOptions
    from kdebug.plan.prepare import LaunchOptions
    from kdebug.vmcore.info import read_dump

    cap = capture(LaunchOptions(tree=sanitizer_tree),
                  CaptureOptions(method="qemu", trigger="sysrq", out=tmp_path / "cap"))
    assert cap.ok and cap.method == "qemu"
    info = read_dump(cap.vmcore_path)
    # VMCOREINFO reaches QEMU only through the loaded qemu_fw_cfg module
    assert info.complete and info.build_id == elf.file_build_id(sanitizer_tree / "vmlinux")
    assert os.stat(cap.vmcore_path).st_mode & 0o777 == 0o600


def _clone(tree: Path, dest: Path) -> Path:
    """The tree's image, vmlinux and config, linked; modules left to the caller."""
    for rel in TREE_FILES:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).symlink_to(tree / rel)
    return dest


def test_compressed_modules_and_dot_o_order(sanitizer_tree, tmp_path):
    """A tree whose .ko files are xz-compressed and whose modules.order lists
    .o (the v6.2+ form) loads the same modules."""
    clone = _clone(sanitizer_tree, tmp_path / "tree")
    lines = (sanitizer_tree / "modules.order").read_text().split()
    for rel in lines:
        out = clone / f"{rel}.xz"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(lzma.compress((sanitizer_tree / rel).read_bytes(), check=lzma.CHECK_CRC32))
    (clone / "modules.order").write_text("".join(f"{rel.removesuffix('.ko')}.o\n" for rel in lines))
    loaded = {line.split()[0] for line in _loaded(clone, tmp_path).splitlines() if line.strip()}
    assert loaded == _wanted_from(sanitizer_tree) | {"pvpanic"}


def test_tree_with_modules_configured_but_not_built_is_one_line(sanitizer_tree, tmp_path):
    clone = _clone(sanitizer_tree, tmp_path / "tree")  # no modules.order, no .ko
    res = subprocess.run([sys.executable, "-m", "kdebug.cli.main", "run", "--tree", str(clone), "--", "true"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 125 and "Traceback" not in res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("kdebug: error:")]
    assert len(errors) == 1 and "no modules.order" in errors[0] and "CONFIG_FW_CFG_SYSFS=m" in errors[0]
