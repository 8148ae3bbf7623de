"""The cap on caches that grow with every run (kdebug.cachetrim)."""

from __future__ import annotations

import math
import os
import time

from kdebug.cachetrim import CAP_ENV, cap_bytes, evictions, trim
from kdebug.initramfs.build import build_initramfs
from kdebug.initramfs.recipe import load_recipe
from tests.conftest import need_tool


def _file(path, size: int, age: float):
    path.write_bytes(b"x" * size)
    t = time.time() - age
    os.utime(path, (t, t))
    return path


def test_evictions_least_recently_used_until_under_the_cap():
    entries = [("a", 1.0, 100), ("b", 3.0, 100), ("c", 2.0, 100)]
    assert evictions(entries, 300) == []
    assert evictions(entries, 250) == ["a"]
    assert evictions(entries, 100) == ["a", "c"]
    assert evictions(entries, 100, keep="a") == ["c", "b"]
    assert evictions(entries, 0, keep="b") == ["a", "c"]


def test_trim_removes_whole_entries_oldest_first(tmp_path):
    kib = 1 << 12  # whole blocks: the cap counts the disk used
    old = [_file(tmp_path / "busybox-old.img", 4 * kib, 300), _file(tmp_path / "busybox-old.json", kib, 300)]
    mid = [_file(tmp_path / "busybox-mid.img", 4 * kib, 200), _file(tmp_path / "busybox-mid.json", kib, 10)]
    new = _file(tmp_path / "hello-new.img", 4 * kib, 0)
    writing = _file(tmp_path / "busybox-x.1234.tmp", 8 * kib, 0)  # another kdebug still writing it
    stale = _file(tmp_path / "k.part", 8 * kib, 7200)  # left by a run that died
    assert sorted(trim(tmp_path, 10 * kib, keep=new)) == ["busybox-old", "k"]
    assert not any(p.exists() for p in [*old, stale])
    # an entry's last use is its newest file: mid's manifest was read 10 s ago
    assert all(p.exists() for p in [*mid, new, writing])
    assert trim(tmp_path, 0, keep=new) == ["busybox-mid"]
    assert new.exists() and writing.exists()


def test_cap_from_the_environment(monkeypatch):
    monkeypatch.delenv(CAP_ENV, raising=False)
    assert cap_bytes("initramfs") == 1024 << 20
    monkeypatch.setenv(CAP_ENV, "12")
    assert cap_bytes("vmcores") == 12 << 20
    monkeypatch.setenv(CAP_ENV, "lots")  # not a number: the default
    assert cap_bytes("vmcores") == 4096 << 20


def test_initramfs_cache_keeps_what_fits_least_recently_used_out(default_kernel, tmp_path, monkeypatch):
    """Real builds: three images, each keyed by a different temporary file
    (as a suite's or a user's --add files are), under a cap two of them fit
    in; the one used least recently goes, a hit counts as a use."""
    need_tool("busybox")
    monkeypatch.setenv("KDEBUG_CACHE", str(tmp_path / "cache"))
    recipe = load_recipe("busybox")

    def build(tag: str):
        extra = tmp_path / f"{tag}.sh"
        if not extra.exists():  # a key names the file's path and mtime
            extra.write_text(f"#!/bin/sh\necho {tag}\n")
        return build_initramfs(recipe, default_kernel, extra_files={"bin/repro": extra}, kdump=False)

    a = build("a")
    size = a.path.stat().st_blocks * 512 + a.path.with_suffix(".json").stat().st_blocks * 512
    monkeypatch.setenv(CAP_ENV, str(math.ceil(2.5 * size / (1 << 20))))
    b = build("b")
    assert a.path.exists() and b.path.exists()
    time.sleep(0.05)
    again = build("a")
    assert again.cached and again.path == a.path
    c = build("c")
    assert not c.cached and a.path.exists() and c.path.exists()
    assert not b.path.exists() and not b.path.with_suffix(".json").exists()
    assert sorted(p.name for p in a.path.parent.iterdir()) == sorted(
        p.name for x in (a, c) for p in (x.path, x.path.with_suffix(".json")))
