"""Choosing kdump's capture kernel from the built trees, and the initramfs
that carries another kernel (real trees and the real default kernel, no boot)."""

from __future__ import annotations

import re
import zlib

import pytest

from kdebug.capture.capture_kernel import NEEDED, choose_capture_kernel, missing_options
from kdebug.errors import UsageError
from kdebug.initramfs.build import build_initramfs
from kdebug.initramfs.cpio import list_cpio, read_member
from kdebug.initramfs.recipe import load_recipe
from kdebug.kbuild import CAPTURE_FRAGMENTS, MODULES_FRAGMENTS, built_tree
from kdebug.kconfig import parse_kconfig
from tests.conftest import need, need_tool


def _grep_builtin(config_text: str, name: str) -> bool:
    return re.search(rf"^CONFIG_{name}=y$", config_text, re.M) is not None


def _trees():
    a, b = built_tree(), built_tree(fragments=MODULES_FRAGMENTS)
    need(a is not None and b is not None, "the two debug trees are not built (scripts/setup.sh)")
    return a, b


@pytest.mark.parametrize("via", ["serial", "disk"])
def test_missing_options_agree_with_the_config_text(via):
    for tree in _trees():
        text = (tree / ".config").read_text()
        missing = missing_options(parse_kconfig(text), via)
        # Independent truth: the option lines themselves.
        assert {m.removeprefix("CONFIG_") for m in missing} >= {o for o in NEEDED
                                                                 if not _grep_builtin(text, o)}
        assert all(not _grep_builtin(text, m.removeprefix("CONFIG_")) for m in missing)


def test_auto_takes_a_built_tree_and_falls_back(default_kernel):
    a, b = _trees()
    # Tree B builds virtio_console as a module: it cannot capture without the crashed kernel's modules.
    assert "CONFIG_VIRTIO_CONSOLE" in missing_options(parse_kconfig((b / ".config").read_text()))
    ck = choose_capture_kernel(default_kernel, "auto", trees=[a, b])
    assert ck.source == "tree" and ck.tree == a and ck.separate
    assert ck.image.stat().st_size < default_kernel.image.stat().st_size
    assert ck.release == (a / "include/config/kernel.release").read_text().strip()
    assert ck.to_dict()["size"] == ck.image.stat().st_size
    assert _grep_builtin((a / ".config").read_text(), f"KERNEL_{ck.compression}")
    # Nothing suitable: the crashed kernel, which needs nothing built in.
    none = choose_capture_kernel(default_kernel, "auto", trees=[b])
    assert none.source == "crashed" and none.image == default_kernel.image and not none.separate
    assert choose_capture_kernel(default_kernel, "crashed").image == default_kernel.image
    # A tree named outright is checked the same way.
    assert choose_capture_kernel(default_kernel, str(a)).tree == a
    with pytest.raises(UsageError, match="VIRTIO_CONSOLE"):
        choose_capture_kernel(default_kernel, str(b))


def test_the_faster_decompressor_wins_over_size(default_kernel):
    a, _ = _trees()
    c = built_tree(fragments=CAPTURE_FRAGMENTS)
    need(c is not None, "the capture tree is not built (scripts/setup.sh)")
    assert _grep_builtin((c / ".config").read_text(), "KERNEL_LZ4")
    assert _grep_builtin((a / ".config").read_text(), "KERNEL_XZ")
    ck = choose_capture_kernel(default_kernel, "auto", trees=[a, c])
    assert ck.tree == c and ck.compression == "LZ4"


def test_another_capture_kernel_gets_no_modules(default_kernel):
    need_tool("busybox", "kexec", "makedumpfile")
    a, _ = _trees()
    image = a / "arch/x86/boot/bzImage"
    same = build_initramfs(load_recipe("busybox"), default_kernel, kdump=True)
    other = build_initramfs(load_recipe("busybox"), default_kernel, kdump=True, capture_image=image)
    assert other.path != same.path  # the capture image is part of the cache key
    data = other.path.read_bytes()
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    main = {n for n, _, _ in list_cpio(d.decompress(data))}
    assert "etc/kdebug/modules" in main  # the crashed kernel still loads its own
    tail = d.unused_data.lstrip(b"\0")
    capture = {n: s for n, _, s in list_cpio(tail)}
    assert capture["kdump/vmlinuz"] == image.stat().st_size
    blob = read_member(tail, "kdump/initrd.img")
    inner = {n for n, _, _ in list_cpio(zlib.decompress(blob, 16 + zlib.MAX_WBITS))}
    assert "init" in inner and "bin/busybox" in inner
    assert not any(n.startswith("lib/modules/") for n in inner) and "etc/kdebug/modules" not in inner
    assert "bin/makedumpfile" in inner  # first on the guest PATH, wherever the host keeps it
