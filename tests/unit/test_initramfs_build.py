"""Building the shipped recipes for the real default kernel (no boot)."""

from __future__ import annotations

import gzip
import subprocess
import zlib

from kdebug.initramfs.build import build_initramfs, library_closure, which
from kdebug.initramfs.cpio import list_cpio, read_member
from kdebug.initramfs.modules import modname, parse_builtin, parse_modules_dep
from kdebug.initramfs.recipe import load_recipe
from tests.conftest import need_tool


def test_busybox_recipe_contents(default_kernel, tmp_path):
    need_tool("busybox", "kexec", "makedumpfile", "ldd")
    out = tmp_path / "initrd.img"
    extra = tmp_path / "repro.sh"
    extra.write_text("#!/bin/sh\necho repro\n")
    res = build_initramfs(load_recipe("busybox"), default_kernel, out, extra_files={"bin/repro": extra},
                          extra_modules=["virtio_net"])
    data = out.read_bytes()
    # The first member is gzip; the capture part follows on a 4-byte boundary.
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    raw = d.decompress(data)
    base = data[: len(data) - len(d.unused_data)]
    names = {n for n, _, _ in list_cpio(raw)}
    assert {"init", "bin/busybox", "bin/sh", "bin/repro", "etc/kdebug/modules"} <= names
    # every library ldd names for kexec is there (independent truth: ldd itself)
    for lib in library_closure(which("kexec")):
        assert str(lib).lstrip("/") in names, lib
    lines = [ln.split() for ln in read_member(raw, "etc/kdebug/modules").decode().split("\n") if ln]
    order = [modname(ln[0]) for ln in lines]
    # Which modules the kernel builds in differs (6.12 builds in virtio_pci):
    # the truth is its own modules.dep and modules.builtin.
    mods = default_kernel.modules_dir
    dep = parse_modules_dep((mods / "modules.dep").read_text())
    builtin = parse_builtin((mods / "modules.builtin").read_text())
    for i, name in enumerate(order):  # dependencies first
        assert {modname(d) for d in dep[name][1]} <= set(order[:i]), name
    wanted = {*load_recipe("busybox").modules, "virtio_net"}  # with an extra module and its deps
    loadable = {n for n in wanted if n in dep and n not in builtin}
    assert loadable and loadable <= set(order) and not set(order) & builtin
    # Device drivers load only for a device they drive: their patterns are the
    # kernel's own modules.alias (the truth); what the user named, with
    # everything it needs, loads always.
    guard = {modname(ln[0]): ln[1:] for ln in lines}
    aliases = {}
    for ln in (mods / "modules.alias").read_text().splitlines():
        if not ln.startswith("alias "):
            continue
        _, pattern, mod = ln.split()
        aliases.setdefault(modname(mod), []).append(pattern)
    for name in loadable - {"virtio_net"}:
        assert guard[name] == aliases[name], name
    needed = {"virtio_net", *(modname(d) for d in dep["virtio_net"][1])}
    assert all(guard[n] == [] for n in needed)
    assert "kdump/vmlinuz" in res.files and "kdump/initrd.img" in res.files
    tail = data[len(base):]
    start = len(data) - len(tail.lstrip(b"\0"))
    assert start % 4 == 0
    capture = {n: s for n, _, s in list_cpio(data[start:])}
    assert capture["kdump/vmlinuz"] == default_kernel.image.stat().st_size


def test_hello_recipe_is_static_and_cached(default_kernel, tmp_path):
    need_tool("gcc", "cpio", "file")
    a = build_initramfs(load_recipe("hello"), default_kernel)
    b = build_initramfs(load_recipe("hello"), default_kernel)
    assert b.cached and a.path == b.path
    subprocess.run(["cpio", "-id", "--quiet"], cwd=tmp_path, input=gzip.decompress(a.path.read_bytes()), check=True)
    desc = subprocess.run(["file", str(tmp_path / "init")], capture_output=True, text=True).stdout
    assert "statically linked" in desc and "x86-64" in desc


def test_capture_kernel_only_where_it_can_be_used(default_kernel):
    need_tool("busybox", "kexec", "makedumpfile")
    with_kdump = build_initramfs(load_recipe("busybox"), default_kernel, kdump=True)
    without = build_initramfs(load_recipe("busybox"), default_kernel, kdump=False)
    assert "kdump/vmlinuz" in with_kdump.files and not any(n.startswith("kdump/") for n in without.files)
    assert with_kdump.path != without.path  # cached apart: the flag is part of the key
    # The payload is the kernel image plus the base archive again.
    grown = with_kdump.path.stat().st_size - without.path.stat().st_size
    assert grown >= default_kernel.image.stat().st_size + without.path.stat().st_size
