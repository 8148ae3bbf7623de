"""Which host tools kdebug uses (kdebug.paths.tool_candidates): its own
builds first, then PATH, then the system directories; the guest finds a
recipe binary wherever the host keeps it; and the makedumpfile kdebug finds
decides the dump level by what it reads, not by its version."""

from __future__ import annotations

import os
import shutil
import zlib
from pathlib import Path

from kdebug.capture.plan import choose_dump_level
from kdebug.initramfs.build import build_initramfs, guest_library_path, library_closure
from kdebug.initramfs.cpio import list_cpio, read_member
from kdebug.initramfs.recipe import load_recipe
from kdebug.kernel import distro_kernels, find_kernel
from kdebug.paths import find_tool, tool_candidates, tools_dir
from kdebug.vmcore.filter import DEFAULT_LEVEL, USER, kernel_exports_file, tool_reads
from tests.conftest import need, need_tool


def _exe(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_kdebug_builds_first_then_path_each_file_once(tmp_path, monkeypatch):
    monkeypatch.setenv("KDEBUG_CACHE", str(tmp_path / "cache"))
    old = _exe(tools_dir() / "frob-1.0" / "bin" / "frob")
    new = _exe(tools_dir() / "frob-1.1" / "bin" / "frob")
    os.utime(old, ns=(1, 1))  # installed before the other: "newest" is by install, not by version
    _exe(tools_dir() / "frob-2.0" / "bin" / "other")  # another tool's prefix
    (tools_dir() / "frob-3.0" / "bin").mkdir(parents=True)
    (tools_dir() / "frob-3.0" / "bin" / "frob").write_text("not executable")
    local = _exe(tmp_path / "local" / "bin" / "frob")
    (tmp_path / "alias").mkdir()
    (tmp_path / "alias" / "frob").symlink_to(local)  # the same file by another name: listed once
    monkeypatch.setenv("PATH", f"{tmp_path / 'local' / 'bin'}:{tmp_path / 'alias'}")
    assert tool_candidates("frob") == [new, old, local]
    assert find_tool("frob") == new
    assert find_tool("no-such-tool-here") is None


def test_libraries_go_where_the_guest_loader_looks():
    libz = "/lib/x86_64-linux-gnu/libz.so.1"
    assert guest_library_path(Path(libz), loader=False) == libz
    assert guest_library_path(Path("/lib64/ld-linux-x86-64.so.2"), loader=True) == "/lib64/ld-linux-x86-64.so.2"
    # found through the host's ld.so.cache, which the guest does not have
    assert guest_library_path(Path("/usr/local/lib/libzstd.so.1"), loader=False) == "/lib/x86_64-linux-gnu/libzstd.so.1"


def test_a_makedumpfile_in_usr_local_bin_is_found_in_the_guest(default_kernel, tmp_path, monkeypatch):
    # The case: makedumpfile in /usr/local/bin, not on the guest's
    # PATH; the initramfs puts it where /init runs it (/bin, first on its PATH).
    need_tool("busybox", "kexec", "makedumpfile", "ldd")
    monkeypatch.setenv("KDEBUG_CACHE", str(tmp_path / "cache"))  # no kdebug build to win
    host = tmp_path / "usr" / "local" / "bin" / "makedumpfile"
    host.parent.mkdir(parents=True)
    shutil.copy2(shutil.which("makedumpfile", path="/usr/sbin:/usr/bin"), host)
    monkeypatch.setenv("PATH", f"{host.parent}:{os.environ['PATH']}")
    assert find_tool("makedumpfile") == host
    res = build_initramfs(load_recipe("busybox"), default_kernel, kdump=False)
    raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(res.path.read_bytes())
    names = {n for n, _, _ in list_cpio(raw)}
    assert read_member(raw, "bin/makedumpfile") == host.read_bytes()
    assert "bin/kexec" in names and not any(n.endswith("local/bin/makedumpfile") for n in names)
    for lib in library_closure(host):  # the truth: ldd
        assert str(lib).lstrip("/") in names, lib


def test_the_makedumpfile_found_decides_the_level_on_a_slab_type_kernel():
    # kdebug's own makedumpfile (setup unpacks trixie's) reads the v6.10 slab
    # page type: -d 31 on such a kernel; bookworm's does not: -d 23. The kernel
    # is recognised by what its image exports, not by its release.
    found = find_tool("makedumpfile")
    system = Path("/usr/bin/makedumpfile")
    need(found is not None and found.is_relative_to(tools_dir()), "setup has not unpacked kdebug's makedumpfile")
    need(system.is_file(), "bookworm's makedumpfile is not installed")
    kernels = [find_kernel(release=r) for r, _, v in distro_kernels() if v is not None]
    slab_type = [k for k in kernels if kernel_exports_file(k.vmlinux, k.image)]
    need(bool(slab_type), "no installed kernel exports PAGE_SLAB_MAPCOUNT_VALUE (bookworm-backports 6.12)")
    k = slab_type[0]
    ours = choose_dump_level(None, k, found)
    assert ours.level == DEFAULT_LEVEL and ours.safe and tool_reads(found)
    if not tool_reads(system):
        theirs = choose_dump_level(None, k, system)
        assert theirs.level == DEFAULT_LEVEL & ~USER and "PAGE_SLAB_MAPCOUNT_VALUE" in theirs.reason
