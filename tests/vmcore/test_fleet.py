"""Fleet triage on real dumps with real servers: a redis-server started here
on loopback, real `kdebug worker`s (Celery's prefork worker), a real SQLite
file and a real PostgreSQL. The truth is the plain local triage run on the
same dumps, and the database rows read back with the database's own client.

The two-machine setup in the README ("Fleet triage") is what runs here on
one machine: a broker, two workers, the dumps at the same path for all."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from kdebug.fleet.db import SCHEMA_VERSION
from tests.conftest import ROOT, need, need_tool

KDEBUG = [sys.executable, "-m", "kdebug.cli.main"]
STAMP = "202612020623"
#: Per-dump time limit for the broker runs, and when a vanished worker's dump
#: comes back (above the limit plus the hard kill's grace, as the README says).
TIMEOUT, REDELIVER = 60, 100


def _kdebug(*args, timeout=900):
    return subprocess.run([*KDEBUG, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """End a process group this test started: TERM, then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(grace)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


# --- servers -----------------------------------------------------------------

def _redis(d: Path, port: int) -> subprocess.Popen:
    """redis-server on loopback, nothing saved (a restart loses every key), once it answers PING."""
    need_tool("redis-server")
    with open(d / "redis.log", "a") as log:
        proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                 "--appendonly", "no", "--dir", str(d), "--databases", "64"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            pytest.fail((d / "redis.log").read_text())
        time.sleep(0.1)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    proc = _redis(tmp_path_factory.mktemp("redis"), port := _free_port())
    try:
        yield {"port": port, "next_db": iter(range(64))}
    finally:
        _stop(proc)


@pytest.fixture
def broker(redis_server) -> str:
    """A Redis database of its own per test: no task of one test reaches another's workers."""
    return f"redis://127.0.0.1:{redis_server['port']}/{next(redis_server['next_db'])}"


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def workers(tmp_path, broker):
    """start(name, *args, hide=DIR, on=URL) -> a running `kdebug worker`; all are stopped at the end.
    ``hide`` runs it in a mount namespace where DIR is an empty tmpfs, as on a
    machine that does not have that path; ``on``: another broker than the test's."""
    started: list[Worker] = []

    def start(name: str, *args: str, hide: Path | None = None, on: str | None = None) -> Worker:
        log = tmp_path / f"worker-{name}.log"
        argv = [*KDEBUG, "worker", "--broker", on or broker, "--name", f"{name}@test", "--concurrency", "1",
                "--redeliver-after", str(REDELIVER), *args]
        if hide is not None:
            need(shutil.which("unshare") is not None and subprocess.run(
                ["unshare", "-m", "true"], capture_output=True).returncode == 0, "no mount namespaces (unshare -m)")
            argv = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"', str(hide), *argv]
        with open(log, "w") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        w = Worker(f"{name}@test", proc, log)
        started.append(w)
        deadline = time.monotonic() + 180
        while f"{w.name} ready." not in w.text():
            assert proc.poll() is None, w.text()
            assert time.monotonic() < deadline, f"worker {name} not ready: {w.text()[-2000:]}"
            time.sleep(0.2)
        return w

    yield start
    for w in started:
        _stop(w.proc)


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of its own, on loopback, as the postgres user (it refuses root)."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    need(bool(bins) and shutil.which("runuser") is not None, "PostgreSQL is not installed (run scripts/setup.sh)")
    pytest.importorskip("psycopg")
    bindir = bins[-1].parent
    d = Path(tempfile.mkdtemp(prefix="kdebug-pg-"))
    shutil.chown(d, "postgres", "postgres")
    port = _free_port()

    def as_pg(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True,
                              timeout=180, cwd=d)

    try:
        r = as_pg(str(bindir / "initdb"), "-D", str(d / "data"), "-A", "trust", "-U", "kdebug")
        assert r.returncode == 0, r.stderr
        r = as_pg(str(bindir / "pg_ctl"), "-D", str(d / "data"), "-l", str(d / "log"), "-w", "start", "-o",
                  f"-c listen_addresses=127.0.0.1 -p {port} -k {d} -c fsync=off")
        assert r.returncode == 0, r.stderr + (d / "log").read_text()
        yield {"port": port, "bindir": bindir}
    finally:
        as_pg(str(bindir / "pg_ctl"), "-D", str(d / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(d, ignore_errors=True)


# --- dumps and the truth -------------------------------------------------------

def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        dest.symlink_to(src)


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory, qemu_dump, kdump_oops):
    """Three crashes as machines leave them, one of them twice under another
    name (a copy: the same content)."""
    root = tmp_path_factory.mktemp("fleet")
    sysrq = Path(qemu_dump("sysrq").path)
    _link(sysrq, root / "web1" / "vmcore")
    _link(Path(qemu_dump("nmi").path), root / "db2" / "vmcore")
    _link(kdump_oops.vmcore_path, root / "var" / "crash" / STAMP / f"dump.{STAMP}")
    _link(sysrq, root / "copies" / "web1-again.vmcore")
    return root


@pytest.fixture(scope="module")
def truth(fleet_dir):
    """The plain local run's records (no database, no broker): path -> dump entry, and the groups."""
    res = _kdebug("triage", str(fleet_dir), "--json", "--no-crash", "--jobs", "2")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["total"], doc["failed"]) == (4, 0)
    return {"dumps": {d["path"]: d for d in doc["dumps"]}, "groups": _groups(doc)}


def _groups(doc: dict) -> list[tuple]:
    return sorted((g["signature"], g["count"], g["reason"], tuple(sorted(g["dumps"]))) for g in doc["groups"])


FACTS = ("signature", "reason", "release", "panic_task", "log_source", "layout", "ok")


def _facts(d: dict) -> tuple:
    return tuple(d[k] for k in FACTS)


def _rows(db: Path) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [dict(r) for r in conn.execute("SELECT * FROM dumps ORDER BY content_hash")]
    finally:
        conn.close()


def _check_rows(rows: list[dict], truth: dict) -> None:
    """One row per distinct dump (the copy shares its original's), each
    holding what the local run found, its report JSON included."""
    from kdebug.report.load import report_from_dict

    assert len(rows) == len({r["content_hash"] for r in rows}) == 3
    # three crashes (the copy shares its original's row, under whichever path came first)
    assert sorted(r["signature"] for r in rows) == sorted({t["signature"] for t in truth["dumps"].values()})
    for r in rows:
        t = truth["dumps"][r["path"]]
        assert (r["signature"], r["reason"], r["release"]) == (t["signature"], t["reason"], t["release"])
        rep = report_from_dict(json.loads(r["report_json"]))
        assert (rep.signature, rep.system.hostname, rep.system.crash_time) == (
            r["signature"], r["host"], r["crash_time"])


# --- the tests -------------------------------------------------------------------

@pytest.mark.one_kernel  # redelivery is the broker's and the workers' business, the same for any kernel
def test_worker_killed_mid_dump_loses_nothing(fleet_dir, truth, broker, workers, tmp_path):
    """Two workers; one is SIGKILLed (its whole process group: the machine
    died) while it analyses a dump. Its dump is redelivered to the other
    after --redeliver-after; every dump ends in the summary exactly once, the
    database holds each once, and a second run analyses nothing. (It waits
    out --redeliver-after, two minutes in all: once, on the default kernel;
    the other tests here send each generation's dumps through the broker.)"""
    a, b = workers("a"), workers("b")
    db = tmp_path / "crashes.sqlite"
    argv = [*KDEBUG, "triage", str(fleet_dir), "--broker", broker, "--db", str(db), "--json",
            "--timeout", str(TIMEOUT)]
    client = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        received = re.compile(r"Task kdebug\.fleet\.analyse\[([0-9a-f-]+)\] received")
        deadline = time.monotonic() + 300
        while not (m := received.search(a.text())):
            assert client.poll() is None and time.monotonic() < deadline, a.text()[-2000:]
            time.sleep(0.02)
        task = m.group(1)
        os.killpg(a.proc.pid, signal.SIGKILL)
        out, err = client.communicate(timeout=TIMEOUT + REDELIVER + 600)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, err
    # the killed worker had not finished it; the other worker got it again and did
    assert f"[{task}] succeeded" not in a.text()
    assert f"[{task}] received" in b.text() and f"[{task}] succeeded" in b.text(), b.text()[-3000:]
    doc = json.loads(out)
    assert sorted(d["path"] for d in doc["dumps"]) == sorted(truth["dumps"])  # each once: none lost, none twice
    assert _groups(doc) == truth["groups"]
    for d in doc["dumps"]:
        assert _facts(d) == _facts(truth["dumps"][d["path"]]), d["path"]
    rows = _rows(db)
    _check_rows(rows, truth)
    assert {r["analysed_by"] for r in rows} <= {a.name, b.name}

    again = _kdebug("triage", str(fleet_dir), "--broker", broker, "--db", str(db), "--json")
    assert again.returncode == 0, again.stderr
    assert f"0 analysed, 4 already known, 0 recorded in {db}" in again.stderr
    doc2 = json.loads(again.stdout)
    assert _groups(doc2) == truth["groups"] and all(d["known"] for d in doc2["dumps"])
    assert (doc2["total"], doc2["analysed"], doc2["known"], doc2["failed"]) == (4, 0, 4, 0)
    assert _rows(db) == rows  # not one row touched


def test_broker_restarted_mid_triage(fleet_dir, truth, workers, tmp_path):
    """Redis killed and started again with nothing saved while the worker
    analyses the first dump: the worker and the client ride the restart out.
    The dumps whose task the broker lost (or whose worker lost the broker)
    end failed with that cause, in the summary and in the database; one finished after the restart is whole; a
    second run analyses the failed ones again and completes the record."""
    d = tmp_path / "redis"
    d.mkdir()
    port = _free_port()
    server = _redis(d, port)
    url = f"redis://127.0.0.1:{port}/0"
    db = tmp_path / "c.sqlite"
    client = None
    try:
        w = workers("r", on=url)
        client = subprocess.Popen([*KDEBUG, "triage", str(fleet_dir), "--broker", url, "--db", str(db), "--json",
                                   "--no-crash", "--timeout", str(TIMEOUT)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=ROOT)
        deadline = time.monotonic() + 300
        while "] received" not in w.text():
            assert client.poll() is None and time.monotonic() < deadline, w.text()[-2000:]
            time.sleep(0.02)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        server = _redis(d, port)
        out, err = client.communicate(timeout=300)
        assert client.returncode == 1, err  # some dumps failed
        assert "Traceback" not in err
        doc = json.loads(out)
        lost = [x for x in doc["dumps"] if not x["ok"]]
        assert lost, out
        for x in lost:
            assert x["error_stage"] == "fleet", x["error"]
            assert x["error"].startswith(("the broker lost this dump's task", "the worker lost the broker")), x["error"]
        for x in doc["dumps"]:
            if x["ok"]:
                assert _facts(x) == _facts(truth["dumps"][x["path"]]), x["path"]
        rows = {r["path"]: r for r in _rows(db)}
        for x in lost:
            if x["path"] in rows:  # (a copy of a dump is on record once, under the first path)
                row = rows[x["path"]]
                assert row["status"] == "failed" and row["error"] == f"fleet: {x['error']}", row
        # The worker is back on the restarted broker: the same run completes the record.
        again = _kdebug("triage", str(fleet_dir), "--broker", url, "--db", str(db), "--json", "--no-crash",
                        "--timeout", str(TIMEOUT))
        assert again.returncode == 0, again.stderr
        assert all(x["ok"] for x in json.loads(again.stdout)["dumps"])
        assert {r["status"] for r in _rows(db)} == {"ok"}
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        _stop(server)


def test_unreadable_and_bad_dumps_are_listed_with_the_workers_error(tmp_path, qemu_dump, broker, workers):
    """A worker on a machine without one dump's path, and a file that is no
    dump: both are listed with the worker's own error, the other dump goes on,
    and the crash database records each as it ended: the good one ok, the
    other two failed with the worker's error as the cause (schema 3)."""
    d = tmp_path / "dumps"
    _link(Path(qemu_dump("sysrq").path), d / "good" / "vmcore")
    _link(Path(qemu_dump("nmi").path), d / "elsewhere" / "vmcore")
    (d / "junk").mkdir()
    (d / "junk" / "vmcore").write_bytes(os.urandom(1 << 20))
    workers("hider", hide=d / "elsewhere")
    db = tmp_path / "c.sqlite"
    r = _kdebug("triage", str(d), "--broker", broker, "--db", str(db), "--json", "--no-crash")
    assert r.returncode == 1, r.stderr  # some dumps failed
    assert "Traceback" not in r.stderr
    by = {Path(x["path"]).parent.name: x for x in json.loads(r.stdout)["dumps"]}
    assert by["good"]["ok"] and by["good"]["reason"] == "sysrq"
    assert not by["elsewhere"]["ok"] and by["elsewhere"]["error_stage"] == "vmcore"
    assert by["elsewhere"]["error"] == f"{d / 'elsewhere' / 'vmcore'} does not exist"
    assert not by["junk"]["ok"] and by["junk"]["error_stage"] == "vmcore"
    assert "is not a vmcore" in by["junk"]["error"]
    rows = {Path(row["path"]).parent.name: row for row in _rows(db)}
    assert set(rows) == {"good", "elsewhere", "junk"}
    assert rows["good"]["status"] == "ok" and rows["good"]["error"] is None
    for name in ("elsewhere", "junk"):
        # The cause with the stage that failed ("vmcore: ...").
        assert rows[name]["status"] == "failed" and rows[name]["error"] == f"vmcore: {by[name]['error']}", rows[name]


def test_dumps_are_routed_by_release(tmp_path, qemu_dump, kernel, broker, workers):
    """A worker takes only the releases it names: a dump of another release is
    not left waiting for nobody: the triage run makes its tier-0 report itself
    (no debug info needed), at once."""
    d = tmp_path / "dumps"
    _link(Path(qemu_dump("sysrq").path), d / "vmcore")
    other = "5.10.0-0-test"
    w = workers("other", "--release", other)
    assert f"kdebug.{other}" in w.text() and f"kdebug.{kernel.release}" not in w.text()
    r = _kdebug("triage", str(d), "--broker", broker, "--json", timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    (entry,) = json.loads(r.stdout)["dumps"]
    assert entry["ok"] and entry["tier"] == 0 and entry["reason"] == "sysrq", entry
    assert "received" not in w.text()  # the other release's worker never saw it
    # and a worker that has it takes it, on that release's queue
    right = workers("right", "--release", kernel.release)
    r = _kdebug("triage", str(d), "--broker", broker, "--json", "--no-crash", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "received" in right.text() and "received" not in w.text()


def test_two_runs_at_once_share_one_sqlite_file(fleet_dir, truth, tmp_path):
    db = tmp_path / "shared.sqlite"
    argv = [*KDEBUG, "triage", str(fleet_dir), "--db", str(db), "--json", "--no-crash", "--jobs", "1"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert _groups(json.loads(out)) == truth["groups"]
    _check_rows(_rows(db), truth)


def test_summary_text_json_html(fleet_dir, truth, tmp_path):
    db = tmp_path / "s.sqlite"
    r = _kdebug("triage", str(fleet_dir), "--db", str(db), "--no-crash")
    assert r.returncode == 0, r.stderr
    conn = sqlite3.connect(db)
    expect = {sig: (n, first, last) for sig, n, first, last in conn.execute(
        "SELECT signature, COUNT(*), MIN(crash_time), MAX(crash_time) FROM dumps GROUP BY signature")}
    releases = {sig: sorted(rel for (rel,) in conn.execute(
        "SELECT DISTINCT release FROM dumps WHERE signature = ?", (sig,))) for sig in expect}
    conn.close()
    assert set(expect) == {g[0] for g in truth["groups"]}
    doc = json.loads(_kdebug("triage", "--db", str(db), "--summary", "--json").stdout)
    got = {s["signature"]: (s["count"], s["first_seen"], s["last_seen"]) for s in doc["signatures"]}
    assert got == expect
    assert {s["signature"]: s["releases"] for s in doc["signatures"]} == releases
    text = _kdebug("triage", "--db", str(db), "--summary")
    assert text.returncode == 0 and all(sig in text.stdout for sig in expect)
    page = tmp_path / "summary.html"
    r = _kdebug("triage", "--db", str(db), "--summary", "--format", "html", "-o", str(page))
    assert r.returncode == 0, r.stderr
    links = re.findall(r'href="(summary\.html\.reports/[0-9a-f]+\.html)"', page.read_text())
    assert len(links) == sum(n for n, _, _ in expect.values())
    for s in doc["signatures"]:
        for ref in s["dumps"]:
            report = tmp_path / "summary.html.reports" / f"{ref['content_hash'].split(':')[1][:16]}.html"
            assert s["signature"] in report.read_text()


def test_postgresql_database(fleet_dir, truth, postgres):
    import psycopg

    url = f"postgresql://kdebug@127.0.0.1:{postgres['port']}/postgres"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS dumps, kdebug_meta")
    r = _kdebug("triage", str(fleet_dir), "--db", url, "--json", "--no-crash")
    assert r.returncode == 0, r.stderr
    assert _groups(json.loads(r.stdout)) == truth["groups"]
    cols = ("content_hash", "path", "host", "release", "signature", "reason", "crash_time", "analysed_by",
            "report_json")
    with psycopg.connect(url) as conn:
        rows = [dict(zip(cols, row, strict=True))
                for row in conn.execute(f"SELECT {', '.join(cols)} FROM dumps ORDER BY content_hash")]
    _check_rows(rows, truth)
    again = _kdebug("triage", str(fleet_dir), "--db", url, "--json", "--no-crash")
    assert again.returncode == 0 and "0 analysed, 4 already known, 0 recorded" in again.stderr
    assert _groups(json.loads(again.stdout)) == truth["groups"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE kdebug_meta SET value = '99' WHERE key = 'schema_version'")
    refused = _kdebug("triage", "--db", url, "--summary")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (f"kdebug: error: crash database {url} has schema version 99; "
                                      f"this kdebug reads version {SCHEMA_VERSION} (upgrade kdebug)")


def test_per_dump_time_limit_is_the_local_runs(tmp_path, qemu_dump, broker, workers):
    """A time limit far below what the full analysis takes (crash alone loads
    the vmlinux for seconds) ends the dump on the worker with the record the
    local run makes for its own timeout."""
    d = tmp_path / "dumps"
    _link(Path(qemu_dump("sysrq").path), d / "vmcore")
    workers("slow")
    local = _kdebug("triage", str(d), "--json", "--timeout", "0.5")
    remote = _kdebug("triage", str(d), "--json", "--timeout", "0.5", "--broker", broker)
    (want,), (got,) = json.loads(local.stdout)["dumps"], json.loads(remote.stdout)["dumps"]
    assert local.returncode == remote.returncode == 1, (remote.stdout[-1500:], remote.stderr[-1500:])
    assert (got["ok"], got["error"], got["error_stage"]) == (False, want["error"], want["error_stage"]) == (
        False, "timed out after 0.5 s", "timeout")


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` holds ``path`` (the same inode) open."""
    want = path.stat()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            st = fd.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
            return True
    return False


def test_pool_process_killed_mid_dump_is_taken_again_at_once(tmp_path, qemu_dump, broker, workers):
    """SIGKILL of the pool process analysing a dump (the worker itself lives):
    the task is rejected back to its queue at once (reject_on_worker_lost),
    analysed again, and its entry is the local run's."""
    d = tmp_path / "dumps"
    _link(Path(qemu_dump("sysrq").path), d / "vmcore")
    local = _kdebug("triage", str(d), "--json", "--no-crash")
    assert local.returncode == 0, local.stderr
    w = workers("solo")
    client = subprocess.Popen([*KDEBUG, "triage", str(d), "--broker", broker, "--json", "--timeout", str(TIMEOUT)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 300
        while not (m := re.search(r"Task kdebug\.fleet\.analyse\[([0-9a-f-]+)\] received", w.text())):
            assert client.poll() is None and time.monotonic() < deadline, w.text()[-2000:]
            time.sleep(0.02)
        (pool,) = _children(w.proc.pid)
        # Killed while it reads the dump: a child killed before it took the
        # job from the pool's queue (billiard's "accepted") has the job given
        # to the next child, with no redelivery (one CI run).
        while not _has_open(pool, d / "vmcore"):
            assert client.poll() is None and time.monotonic() < deadline, w.text()[-2000:]
            time.sleep(0.005)
        os.kill(pool, signal.SIGKILL)
        out, err = client.communicate(timeout=TIMEOUT + 600)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, err
    task = m.group(1)
    assert w.text().count(f"[{task}] received") == 2 and f"[{task}] succeeded" in w.text(), w.text()[-3000:]
    (got,), (want,) = json.loads(out)["dumps"], json.loads(local.stdout)["dumps"]
    assert _facts(got) == _facts(want)
