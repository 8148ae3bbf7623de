"""Building kdebug's crash extension (crash_ext/kdebug.c) with the real gcc
against Debian's /usr/include/crash/defs.h, into the cache; and the one-line
errors when a piece is missing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kdebug.crash.extension import DEFS_H, ExtensionError, build_extension, compile_argv, defs_h_for
from tests.conftest import need, need_tool


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KDEBUG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "crash-ext"


def test_argv_is_crash_makefiles(tmp_path):
    argv = compile_argv(tmp_path / "kdebug.c", tmp_path / "kdebug.so", machine="x86_64")
    assert argv[0] == "gcc" and "-DX86_64" in argv and {"-shared", "-fPIC", "-rdynamic"} <= set(argv)
    with pytest.raises(ExtensionError, match="does not know the machine 'vax'"):
        compile_argv(tmp_path / "kdebug.c", tmp_path / "kdebug.so", machine="vax")


def test_builds_once_per_crash_binary(cache, tmp_path):
    need_tool("gcc", "crash")
    need(DEFS_H.is_file(), f"{DEFS_H} is not installed (apt-get install crash)")
    so = build_extension()
    assert so.parent == cache and so.read_bytes()[:4] == b"\x7fELF"
    syms = subprocess.run(["nm", "-D", "--defined-only", str(so)], capture_output=True, text=True).stdout
    assert "register_extension" not in syms  # resolved from crash when loaded, not built in
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(so)], capture_output=True, text=True).stdout
    assert {"register_extension", "readmem", "datatype_info"} <= {ln.split()[-1] for ln in undefined.splitlines()}
    mtime = so.stat().st_mtime_ns
    assert build_extension() == so and so.stat().st_mtime_ns == mtime  # cached, not rebuilt
    # Another crash binary is another key: the extension is rebuilt for it.
    other = tmp_path / "crash"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    assert build_extension(str(other), defs_h=DEFS_H) != so
    assert sorted(p.name for p in cache.iterdir() if p.name.startswith(".")) == []  # no half-written files


def test_missing_gcc_names_the_package(cache):
    with pytest.raises(ExtensionError) as e:
        build_extension(gcc="/nonexistent/gcc")
    assert str(e.value) == "cannot build kdebug's crash extension: gcc is not installed (apt-get install gcc)"


def test_missing_header_names_the_package(cache, tmp_path):
    need_tool("gcc")
    with pytest.raises(ExtensionError) as e:
        build_extension(defs_h=tmp_path / "crash" / "defs.h")
    assert str(e.value).startswith(f"cannot build kdebug's crash extension: {tmp_path}/crash/defs.h is missing "
                                   "(the header of ")


def test_each_crash_gets_the_header_installed_with_it(tmp_path):
    # <prefix>/bin/crash pairs with <prefix>/include/crash/defs.h, as Debian
    # installs crash and as scripts/setup.d/crash.sh installs its build; a
    # symlink on PATH leads to the real prefix.
    prefix = tmp_path / "crash-9.0.2"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "include" / "crash").mkdir(parents=True)
    (prefix / "bin" / "crash").write_text("#!/bin/sh\n")
    (prefix / "include" / "crash" / "defs.h").write_text("/* 9.0.2 */\n")
    (tmp_path / "local" / "bin").mkdir(parents=True)
    link = tmp_path / "local" / "bin" / "crash"
    link.symlink_to(prefix / "bin" / "crash")
    assert defs_h_for(prefix / "bin" / "crash") == prefix / "include" / "crash" / "defs.h"
    assert defs_h_for(link) == prefix / "include" / "crash" / "defs.h"
    assert defs_h_for(Path("/usr/bin/crash")) == DEFS_H
