"""Recipes as data, and kernel discovery/pairing on synthetic and real files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from kdebug.errors import KernelError, UsageError
from kdebug.initramfs.recipe import list_recipes, load_recipe, parse_recipe
from kdebug.kconfig import check_features, load_features, parse_kconfig
from kdebug.kernel import find_kernel, tree_kernel
from tests.conftest import need_tool
from tests.unit.test_elf import make_bzimage, make_elf


def test_shipped_recipes_load():
    assert {"hello", "busybox"} <= set(list_recipes())
    bb = load_recipe("busybox")
    assert bb.busybox and bb.kdump and "kexec" in bb.binaries and "virtio_console" in bb.modules
    assert load_recipe("hello").init_kind == "compile"


@pytest.mark.parametrize("data,msg", [
    ({"init": {"script": "x.sh"}, "colour": 1}, "unknown keys colour"),
    ({"init": "x.sh"}, "init must be"),
    ({"init": {"script": "missing.sh"}}, "not found"),
    ({"init": {"script": "x.sh"}, "modules": "virtio"}, "modules must be a list"),
])
def test_bad_recipes(tmp_path, data, msg):
    (tmp_path / "x.sh").write_text("#!/bin/sh\n")
    with pytest.raises(UsageError, match=msg):
        parse_recipe("t", data, tmp_path)


def test_unknown_recipe_lists_known():
    with pytest.raises(UsageError, match="known: .*busybox"):
        load_recipe("nope")


def test_kconfig_and_features():
    cfg = parse_kconfig('CONFIG_KEXEC=y\nCONFIG_CRASH_DUMP=y\n# CONFIG_KGDB is not set\nCONFIG_PVPANIC=m\n'
                        'CONFIG_LOCALVERSION="-kd"\n')
    assert cfg.builtin("KEXEC") and not cfg.enabled("KGDB") and cfg.get("CONFIG_LOCALVERSION") == "-kd"
    checks = {c.feature.name: c for c in check_features(cfg, load_features())}
    assert [r.option for r in checks["kdump"].missing] == ["PROC_VMCORE", "MAGIC_SYSRQ", "RELOCATABLE"]
    assert [r.option for r in checks["kgdb"].missing] == ["KGDB", "KGDB_SERIAL_CONSOLE"]
    # a module is fine where the feature can load one
    assert [r.option for r in checks["qemu-dump"].missing] == ["FW_CFG_SYSFS"]


def _tree(tmp_path: Path, image_id: bytes, vmlinux_id: bytes) -> Path:
    t = tmp_path / "linux"
    (t / "arch/x86/boot").mkdir(parents=True)
    (t / "arch/x86/boot/bzImage").write_bytes(make_bzimage(gzip.compress(make_elf(image_id), mtime=0)))
    (t / "vmlinux").write_bytes(make_elf(vmlinux_id))
    (t / ".config").write_text("CONFIG_KGDB=y\nCONFIG_IKCONFIG=y\n")
    (t / "include/config").mkdir(parents=True)
    (t / "include/config/kernel.release").write_text("6.9.0-kd\n")
    return t


def test_tree_pairs_by_build_id(tmp_path, monkeypatch):
    monkeypatch.setenv("KDEBUG_CACHE", str(tmp_path / "cache"))
    k = tree_kernel(_tree(tmp_path, b"\x11" * 20, b"\x11" * 20))
    assert k.release == "6.9.0-kd" and k.build_id == "11" * 20 and k.source == "tree"
    assert k.config.builtin("KGDB")


def test_tree_mismatch_names_both_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("KDEBUG_CACHE", str(tmp_path / "cache"))
    with pytest.raises(KernelError) as ei:
        tree_kernel(_tree(tmp_path, b"\x11" * 20, b"\x22" * 20))
    assert "11" * 20 in str(ei.value) and "22" * 20 in str(ei.value)


def test_tree_without_bzimage(tmp_path):
    with pytest.raises(KernelError, match="no arch/x86/boot/bzImage"):
        tree_kernel(tmp_path)


def test_option_combinations():
    with pytest.raises(UsageError, match="--tree cannot be combined"):
        find_kernel(kernel=Path("/x"), tree=Path("/y"))
    with pytest.raises(UsageError, match="--vmlinux needs --kernel"):
        find_kernel(vmlinux=Path("/x"))


def test_default_kernel_is_paired(default_kernel):
    # Independent truth: binutils' readelf reads the same build-id from the vmlinux.
    import subprocess

    need_tool("readelf")
    out = subprocess.run(["readelf", "-n", str(default_kernel.vmlinux)], capture_output=True, text=True).stdout
    assert f"Build ID: {default_kernel.build_id}" in out


def test_release_prefix_ends_at_a_version_component():
    from kdebug.kernel import select_release

    rels = ["6.12.95+deb12-cloud-amd64", "6.1.0-57-cloud-amd64"]
    assert select_release(rels, "6.1", None) == "6.1.0-57-cloud-amd64"
    assert select_release(rels, "6.12", None) == "6.12.95+deb12-cloud-amd64"
    assert select_release(rels, "6.1.0-57-cloud-amd64", None) == "6.1.0-57-cloud-amd64"
    assert select_release(rels, "6.2", None) is None
    assert select_release(rels, None, "6.1.0-57-cloud-amd64") == "6.1.0-57-cloud-amd64"
    assert select_release(rels, None, "5.10.0-1-amd64") == rels[0]  # not installed: the newest
