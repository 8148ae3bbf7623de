"""The pure parts of finding debug info by build-id: verification on the
machine's real debug files (its -dbg vmlinux and modules), settings, the
local search, names. The transfers themselves are tested against a real
debuginfod in tests/vmcore/test_debuginfod.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kdebug.cli.fetch import describe
from kdebug.elf import file_module
from kdebug.kernel import vmlinux_build_id
from kdebug.paths import debug_dirs
from kdebug.vmcore.debuginfod import FetchProgress, cache_path, servers, stall_timeout, verify
from kdebug.vmcore.search import MISSING, NO_BUILD_ID, DebugInfoMissing, DebugSearch, debug_package
from tests.conftest import need


@pytest.fixture(scope="module")
def real(default_kernel):
    """(vmlinux, two module debug files) of the default kernel's -dbg package."""
    mods = sorted(p for p in (default_kernel.module_debug_dir or Path("/nonexistent")).rglob("*.ko"))[:2]
    need(default_kernel.vmlinux is not None and len(mods) == 2, "the default kernel's -dbg package")
    return default_kernel.vmlinux, mods[0], mods[1]


def test_verify_takes_the_right_file_and_names_what_is_wrong(real, tmp_path):
    vmlinux, a, b = real
    assert verify(vmlinux, vmlinux_build_id(vmlinux)) is None
    a_id, b_id = file_module(a).build_id, file_module(b).build_id  # the module reader: an independent parse
    assert a_id and b_id and a_id != b_id
    assert verify(a, a_id) is None
    assert verify(b, a_id) == f"it has build-id {b_id}, not {a_id}"
    cut = tmp_path / "cut.ko"
    cut.write_bytes(a.read_bytes()[: a.stat().st_size // 2])
    assert verify(cut, a_id).startswith("not a whole ELF file")
    text = tmp_path / "404"
    text.write_text("not found")
    assert verify(text, a_id).startswith("not a whole ELF file")


def test_settings_from_the_environment(monkeypatch):
    env = {"DEBUGINFOD_URLS": " http://a:8002/  https://b/x ", "DEBUGINFOD_TIMEOUT": "5"}
    assert servers(env) == ("http://a:8002", "https://b/x")
    assert stall_timeout(env) == 5 and stall_timeout({"DEBUGINFOD_TIMEOUT": "soon"}) == 30
    monkeypatch.setenv("KDEBUG_DEBUG_DIRS", "")
    assert debug_dirs() == ()
    monkeypatch.setenv("KDEBUG_DEBUG_DIRS", "/a::/b")
    assert debug_dirs() == (Path("/a"), Path("/b"))
    monkeypatch.delenv("KDEBUG_DEBUG_DIRS")
    assert debug_dirs() == (Path("/usr/lib/debug"),)


def test_cache_layout_is_the_build_id_tree_debuggers_search():
    assert cache_path(Path("/c"), "ab12cd") == Path("/c/.build-id/ab/12cd.debug")


def test_debug_package_names():
    assert debug_package("6.1.0-57-cloud-amd64") == "linux-image-6.1.0-57-cloud-amd64-dbg"
    assert debug_package("6.12.95+deb12-cloud-amd64") == "linux-image-6.12.95+deb12-cloud-amd64-dbg"
    assert debug_package("5.15.0-91-generic") == "linux-image-unsigned-5.15.0-91-generic-dbgsym"
    assert debug_package("5.14.0-362.8.1.el9_3.x86_64") == "kernel-debuginfo-5.14.0-362.8.1.el9_3.x86_64"


def _search(tmp_path: Path, *dirs: Path) -> DebugSearch:
    return DebugSearch(dirs=dirs, cache=tmp_path / "cache", boot_dirs=tuple(d / "boot" for d in dirs))


def test_local_search_by_build_id_tree_and_by_release(real, tmp_path):
    vmlinux, a, _b = real
    bid = vmlinux_build_id(vmlinux)
    tree = tmp_path / "debug"
    link = tree / ".build-id" / bid[:2] / f"{bid[2:]}.debug"
    link.parent.mkdir(parents=True)
    link.symlink_to(vmlinux)
    piece = _search(tmp_path, tree).vmlinux(bid, "some-other-release")
    assert piece.path == link and piece.source == "debug-dir" and not piece.note

    # No BUILD-ID in VMCOREINFO: the release names it, and the piece says so.
    rel = "9.9.9-test"
    named = tmp_path / "old" / "boot" / f"vmlinux-{rel}"
    named.parent.mkdir(parents=True)
    named.symlink_to(vmlinux)
    piece = _search(tmp_path, tmp_path / "old").vmlinux(None, rel)
    assert piece.path == named and piece.note == NO_BUILD_ID

    # A module by name under lib/modules/R, checked by build-id.
    mod = tmp_path / "m" / "lib" / "modules" / rel / "kernel" / a.name
    mod.parent.mkdir(parents=True)
    shutil.copy(a, mod)
    s = _search(tmp_path, tmp_path / "m")
    assert s.local_module(a.name[:-3], file_module(a).build_id, rel).path == mod
    assert s.local_module(a.name[:-3], "00" * 20, rel) is None


def test_nothing_found_says_how_to_get_it(tmp_path):
    s = _search(tmp_path)
    with pytest.raises(DebugInfoMissing) as e:
        s.vmlinux("ab" * 20, "6.1.0-57-cloud-amd64")
    err = e.value
    assert (err.build_id, err.release, err.package, err.urls) == (
        "ab" * 20, "6.1.0-57-cloud-amd64", "linux-image-6.1.0-57-cloud-amd64-dbg", ())
    assert "DEBUGINFOD_URLS" in str(err) and "\n" not in str(err)
    assert s.probe("ab" * 20, "vmlinux").source == MISSING


def test_progress_line():
    p = FetchProgress("vmlinux", "ab", "http://s/buildid/ab/debuginfo", 50_000_000, 200_000_000, 0.5,
                      resumed_from=10_000_000)
    assert describe(p) == ("kdebug: debuginfod: fetching vmlinux 50.0/200.0 MB 25%, 80 MB/s, resumed at "
                           "10.0 MB (http://s/buildid/ab/debuginfo)")
