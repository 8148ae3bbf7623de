"""Debug info by build-id from a real debuginfod (elfutils 0.188), in a
private network namespace, serving the machine's own -dbg files (symlinks,
-F -L); kdebug runs in the same namespace with the machine's debug
directories hidden (KDEBUG_DEBUG_DIRS='') and a cache of its own. The truth
is the machine's -dbg files and the report made with them."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, need_tool
from tests.vmcore.debuginfod_server import Debuginfod, PrivateNet


@dataclass
class Served:
    net: PrivateNet
    server: Debuginfod
    dump: Path  # the dump alone (no capture.json beside it naming the local vmlinux)
    capture: Path  # the dump where it was made (a capture.json beside it may name the vmlinux)
    release: str
    vmlinux_id: str
    files: dict[str, Path]  # build-id -> the machine's file (vmlinux and each loaded module)
    modules: dict[str, str]  # name -> build-id

    def kdebug(self, *args: str, cache: Path, env: dict | None = None, timeout: float = 900):
        e = {**os.environ, "KDEBUG_DEBUG_DIRS": "", "KDEBUG_CACHE": str(cache),
             "DEBUGINFOD_URLS": self.server.url, **(env or {})}
        return self.net.run([sys.executable, "-m", "kdebug.cli.main", *args], env=e, cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout)

    def restart(self) -> None:
        self.server.stop()
        self.server.start(wait_for=tuple(self.files))


@pytest.fixture(scope="session")
def served(qemu_dump, tmp_path_factory):
    """A QEMU dump of a sysrq-c crash, and a debuginfod serving its vmlinux
    and every loaded module's debug file."""
    need_tool("debuginfod", "unshare", "nsenter", "ip", "curl")
    from kdebug.analysis.debugfiles import dump_modules
    from kdebug.vmcore.locate import open_dump
    from kdebug.vmcore.search import DebugSearch

    original = Path(qemu_dump("sysrq").path)
    local = open_dump(original)
    d = tmp_path_factory.mktemp("debuginfod")
    (d / "dumps").mkdir()
    dump = d / "dumps" / "vmcore"
    dump.symlink_to(local.path)
    files = {local.info.build_id: local.vmlinux}
    modules = dict(dump_modules(local.path, local.vmlinux))
    search = DebugSearch.from_env()
    for name, bid in modules.items():
        piece = search.local_module(name, bid, local.info.release, local.module_files)
        assert piece is not None, f"no local debug file for {name}"
        files[bid] = piece.path
    serve = d / "serve"
    serve.mkdir()
    for bid, path in files.items():
        (serve / f"{bid}-{path.name}").symlink_to(path)
    net = PrivateNet()
    server = Debuginfod(net, serve, d / "server").start(wait_for=tuple(files))
    yield Served(net, server, dump, original, local.info.release, local.info.build_id, files, modules)
    server.stop()
    net.close()


def _json(res) -> dict:
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_full_report_after_one_fetch_then_from_the_cache_offline(served, report_of, tmp_path):
    from kdebug.vmcore.debuginfod import cache_path

    cache = tmp_path / "cache"
    first = served.kdebug("postmortem", str(served.dump), "--no-crash", "--json", cache=cache)
    doc = _json(first)
    truth = report_of(served.capture)  # made with the machine's own -dbg files
    assert "fetched vmlinux" in first.stderr and doc["tier"] == 1
    assert doc["signature"] == truth.signature
    assert [m["name"] for m in doc["modules"]] == [m.name for m in truth.modules]
    assert not [w for w in doc["warnings"] if "no debug info for module" in w], doc["warnings"]
    # Every piece landed in the cache, byte for byte the machine's file.
    for bid, path in served.files.items():
        assert filecmp.cmp(cache_path(cache / "debuginfo", bid), path, shallow=False), path
    assert doc["system"]["vmlinux"] == str(cache_path(cache / "debuginfo", served.vmlinux_id))
    assert not list((cache / "debuginfo").rglob("*.part"))

    served.server.stop()  # no server at all: the cache serves
    try:
        second = served.kdebug("postmortem", str(served.dump), "--no-crash", "--json", cache=cache)
    finally:
        served.restart()
    again = _json(second)
    assert "fetch" not in second.stderr
    assert again["signature"] == doc["signature"] and again["modules"] == doc["modules"]
    assert again["panic"]["backtrace"] == doc["panic"]["backtrace"]


def test_doctor_says_where_each_piece_is_and_would_be(served, tmp_path):
    cache = tmp_path / "cache"
    before = _json(served.kdebug("doctor", str(served.dump), "--json", cache=cache))
    assert before["vmlinux"]["source"] == "debuginfod" and before["vmlinux"]["path"] is None
    assert before["vmlinux"]["where"] == f"{served.server.url}/buildid/{served.vmlinux_id}/debuginfo"
    assert before["modules"] == [] and any("--fetch" in n for n in before["notes"])

    fetched = _json(served.kdebug("doctor", str(served.dump), "--json", "--fetch", cache=cache))
    assert {m["what"]: m["build_id"] for m in fetched["modules"]} == served.modules
    assert {m["source"] for m in fetched["modules"]} == {"debuginfod"}

    after = _json(served.kdebug("doctor", str(served.dump), "--json", cache=cache))
    assert after["vmlinux"]["source"] == "cache"
    assert {m["source"] for m in after["modules"]} == {"cache"}

    # The machine's own directories, visible again, come first.
    local = _json(served.kdebug("doctor", str(served.capture), "--json", cache=cache,
                                env={"KDEBUG_DEBUG_DIRS": "/usr/lib/debug"}))
    assert local["vmlinux"]["path"] == str(served.files[served.vmlinux_id])
    for m in local["modules"]:
        assert m["path"] == str(served.files[m["build_id"]]) and m["source"] in ("debug-dir", "given")


def test_404_names_the_package_and_the_server(served, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    other = Debuginfod(served.net, empty, tmp_path / "srv", port=8003).start()
    try:
        url = other.url
        res = served.kdebug("doctor", str(served.dump), "--fetch", cache=tmp_path / "c",
                            env={"DEBUGINFOD_URLS": url})
        code = ("from kdebug.vmcore.locate import open_dump\n"
                "from kdebug.vmcore.search import DebugInfoMissing\n"
                f"try: open_dump({str(served.dump)!r})\n"
                "except DebugInfoMissing as e: print(e.build_id, e.release, e.package, *e.urls)\n")
        typed = served.net.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, "KDEBUG_DEBUG_DIRS": "", "KDEBUG_CACHE": str(tmp_path / "c"),
                                    "DEBUGINFOD_URLS": url})
    finally:
        other.stop()
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"{url}: 404" in res.stdout and f"linux-image-{served.release}-dbg" in res.stdout
    assert typed.stdout.split() == [served.vmlinux_id, served.release, f"linux-image-{served.release}-dbg", url]
    assert not (tmp_path / "c" / "debuginfo" / ".build-id").exists() or \
        not list((tmp_path / "c" / "debuginfo" / ".build-id").rglob("*.debug"))


def test_server_down_then_the_next_server(served, tmp_path):
    down = "http://127.0.0.1:9"  # nothing listens there in this namespace
    res = served.kdebug("doctor", str(served.dump), cache=tmp_path / "c", env={"DEBUGINFOD_URLS": down})
    assert res.returncode == 1 and f"{down}: cannot connect (connection refused)" in res.stdout
    both = served.kdebug("doctor", str(served.dump), "--json", cache=tmp_path / "c",
                         env={"DEBUGINFOD_URLS": f"{down} {served.server.url}"})
    assert _json(both)["vmlinux"]["where"].startswith(served.server.url)


def test_stalled_server_times_out_in_one_line(served, tmp_path):
    served.server.pause()  # the kernel still accepts the connection; nothing answers
    try:
        t0 = time.monotonic()
        res = served.kdebug("doctor", str(served.dump), "--fetch", cache=tmp_path / "c",
                            env={"DEBUGINFOD_TIMEOUT": "2"})
        secs = time.monotonic() - t0
    finally:
        served.server.resume()
    assert res.returncode == 1 and "no answer within 2 s" in res.stdout and secs < 60


def test_transfer_cut_keeps_no_partial_file_and_the_next_run_completes(served, tmp_path):
    from kdebug.vmcore.debuginfod import cache_path

    for _attempt in range(3):
        cache = tmp_path / f"c{_attempt}"
        final = cache_path(cache / "debuginfo", served.vmlinux_id)
        part = final.with_name(final.name + ".part")
        env = {**os.environ, "KDEBUG_DEBUG_DIRS": "", "KDEBUG_CACHE": str(cache),
               "DEBUGINFOD_URLS": served.server.url}
        proc = served.net.popen([sys.executable, "-m", "kdebug.cli.main", "doctor", str(served.dump), "--fetch"],
                                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while proc.poll() is None and not (part.is_file() and part.stat().st_size > 0):
            time.sleep(0.002)
        served.server.stop()  # killed mid-transfer
        out, err = proc.communicate(timeout=300)
        served.restart()
        if final.is_file() and "transfer cut" not in out:
            continue  # the whole file came before the kill: try again
        break
    else:
        pytest.fail("three transfers finished before the server could be killed")
    assert proc.returncode == 1 and "Traceback" not in err
    assert "transfer cut at" in out and not final.exists()
    again = served.kdebug("doctor", str(served.dump), "--fetch", cache=cache)
    assert again.returncode == 0, again.stdout + again.stderr
    assert filecmp.cmp(final, served.files[served.vmlinux_id], shallow=False) and not part.exists()


def test_a_file_with_another_build_id_is_refused_and_not_cached(served, tmp_path):
    """debuginfod serves the file at the path it indexed, if its mtime is
    unchanged: swap another module's debug file in under the same mtime."""
    from kdebug.vmcore.debuginfod import cache_path

    name, want = sorted(served.modules.items())[0]
    other_id, other = next((b, p) for b, p in served.files.items() if b not in (want, served.vmlinux_id))
    serve = tmp_path / "serve"
    serve.mkdir()
    swapped = serve / "m.ko"
    swapped.write_bytes(served.files[want].read_bytes())
    server = Debuginfod(served.net, serve, tmp_path / "srv", port=8004).start(wait_for=(want,))
    try:
        st = swapped.stat()
        swapped.write_bytes(other.read_bytes())
        os.utime(swapped, ns=(st.st_atime_ns, st.st_mtime_ns))
        res = served.kdebug("doctor", str(served.dump), "--json", "--fetch", "--vmlinux",
                            str(served.files[served.vmlinux_id]), cache=tmp_path / "c",
                            env={"DEBUGINFOD_URLS": server.url})
    finally:
        server.stop()
    doc = _json(res)
    row = next(m for m in doc["modules"] if m["what"] == name)
    assert row["source"] == "missing"
    assert any(f"it has build-id {other_id}, not {want}" in n and "not cached" in n for n in doc["notes"]), doc
    cached = cache_path(tmp_path / "c" / "debuginfo", want)
    assert not cached.exists() and not cached.with_name(cached.name + ".part").exists()


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_a_cache_that_cannot_take_the_file_is_one_line(served, tmp_path, how):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    opts = "size=1m" if how == "full" else "ro"
    served.net.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], check=True)
    try:
        res = served.kdebug("doctor", str(served.dump), "--fetch", cache=mnt / "kdebug")
    finally:
        served.net.run(["umount", str(mnt)], check=True)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    (line,) = [ln for ln in res.stderr.splitlines() if not ln.startswith("kdebug: debuginfod:")]
    assert ("is full" if how == "full" else "is not writable") in line and "KDEBUG_CACHE" in line


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_postmortem_with_a_cache_that_cannot_take_the_file_is_tier0(served, tmp_path, how):
    """postmortem, unlike doctor --fetch, still reports: tier 0, its first line naming the cache's trouble."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    served.net.run(["mount", "-t", "tmpfs", "-o", "size=1m" if how == "full" else "ro", "tmpfs", str(mnt)],
                   check=True)
    try:
        res = served.kdebug("postmortem", str(served.dump), "--no-crash", cache=mnt / "kdebug")
    finally:
        served.net.run(["umount", str(mnt)], check=True)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    first = next(ln for ln in res.stdout.splitlines() if ln.startswith("TIER 0"))
    assert ("is full" if how == "full" else "is not writable") in first and "KDEBUG_CACHE" in first, first
    assert f"linux-image-{served.release}-dbg" in first
