"""Fleet triage's pure parts and its crash database on a real SQLite file:
the report back from JSON, the dump fingerprint, the versioned schema,
idempotent inserts, concurrent writers, the summary, and the CLI's one-line
errors (an unreachable broker within seconds, a newer schema)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from kdebug.fleet.db import SCHEMA_VERSION, open_db
from kdebug.fleet.fingerprint import fingerprint
from kdebug.fleet.records import DumpRow, row_of
from kdebug.fleet.summary import summarize, summary_html, summary_json, summary_text
from kdebug.model import FrameRecord, ModuleRecord, PrintkRecord, TaskRecord
from kdebug.report.load import report_from_dict
from kdebug.report.model import DumpCheck, DumpGap, EngineRun, PanicInfo, Report, SystemInfo, TaskSummary
from kdebug.report.triage import TriageEntry, group
from kdebug.vmcore.layouts import DumpSite

KDEBUG = [sys.executable, "-m", "kdebug.cli.main"]


def _report(sig="sysrq: crash triggered in sysrq_handle_crash", reason="sysrq", host="web1",
            release="6.1.0-57-cloud-amd64", when="2026-12-02T06:51:44+00:00") -> Report:
    task = TaskRecord(pid=301, tgid=301, ppid=1, state="R", cpu=0, comm="sh", address=0xFFFF888003A0C000,
                      rss_kb=412, on_cpu=True)
    frames = [FrameRecord(0, 0xFFFFFFFF81A3B1C2, "sysrq_handle_crash", 0x12, 0x20, file="drivers/tty/sysrq.c",
                          line=153)]
    return Report(
        signature=sig,
        system=SystemInfo(release=release, hostname=host, cpus=2, memory_kb=481052, uptime_s=3.2,
                          crash_time=when, kaslr_offset=392167424),
        panic=PanicInfo("sysrq triggered crash", reason, 0, task, frames),
        tasks=TaskSummary(54, {"R": 2, "S": 52}, top_memory=[task]),
        log_tail=[PrintkRecord(7, 3_236_000_000, 0, "sysrq: Trigger a crash", caller="T301")],
        modules=[ModuleRecord("virtio_pci", 24576, 0, 0xFFFFFFFFC0000000, used_by=["virtio_blk"])],
        engines=[EngineRun("drgn", True, 0.5, version="0.0.30")],
        dump=DumpCheck(True, tasks=54, gaps=[DumpGap("log", "Excluded page", 0x1000, "slab")]),
    )


def _row(h: str, **kw) -> DumpRow:
    entry = TriageEntry(DumpSite(kw.pop("path", f"/var/crash/{h}/vmcore"), "rhel-kdump"), 1.5,
                        report=_report(**kw))
    return row_of(entry, f"fp1:{h}", "local@test")


def test_report_round_trips_through_json():
    r = _report()
    back = report_from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r
    assert isinstance(back.panic.task, TaskRecord) and isinstance(back.panic.backtrace[0], FrameRecord)
    # a newer minor version's extra field is dropped; another major version is refused
    assert report_from_dict({**r.to_dict(), "added_in_1_9": 1}) == r
    from kdebug.errors import UsageError

    with pytest.raises(UsageError, match="report schema 2.0"):
        report_from_dict({**r.to_dict(), "schema_version": "2.0"})


def test_fingerprint_is_the_content_not_the_name(tmp_path):
    data = bytearray(os.urandom(3 << 20))
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_bytes(data)
    b.write_bytes(data)
    data[100] ^= 1  # in the headers (VMCOREINFO, registers)
    c.write_bytes(data)
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)
    assert fingerprint(a).startswith("fp1:")
    a.write_bytes(bytes(data) + b"\0")  # longer: another dump
    assert fingerprint(a) != fingerprint(c)


def test_schema_created_once_and_rows_inserted_once(tmp_path):
    path = tmp_path / "crashes.sqlite"
    with open_db(path) as db:
        assert db.record([_row("aa"), _row("bb")]) == 2
        assert db.record([_row("aa", path="/elsewhere/vmcore"), _row("cc")]) == 1  # aa: already there
    with open_db(f"sqlite:///{path}") as db:
        rows = {r.content_hash: r for r in db.rows()}
        assert sorted(rows) == ["fp1:aa", "fp1:bb", "fp1:cc"]
        assert rows["fp1:aa"].path == "/var/crash/aa/vmcore"  # the first sighting stays
        assert set(db.known(["fp1:aa", "fp1:zz"])) == {"fp1:aa"}
        assert rows["fp1:aa"].report() == _report()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM kdebug_meta WHERE key = 'schema_version'").fetchone() == (
        str(SCHEMA_VERSION),)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def _newer(path) -> None:
    open_db(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE kdebug_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()


def test_newer_schema_is_refused_with_its_version(tmp_path):
    path = tmp_path / "newer.sqlite"
    _newer(path)
    r = subprocess.run([*KDEBUG, "triage", "--db", str(path), "--summary"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line == (f"kdebug: error: crash database {path} has schema version {SCHEMA_VERSION + 1}; "
                    f"this kdebug reads version {SCHEMA_VERSION} (upgrade kdebug)")


@pytest.mark.parametrize("content", [b"not a database at all " * 100, None])
def test_bad_database_is_one_line(tmp_path, content):
    path = tmp_path / "x.sqlite"
    if content is None:
        path = tmp_path / "missing-dir" / "x.sqlite"
    else:
        path.write_bytes(content)
    r = subprocess.run([*KDEBUG, "triage", "--db", str(path), "--summary"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"kdebug: error: --db {path}")


_WRITER = """
import sys
from kdebug.fleet.db import open_db
from tests.unit.test_fleet import _row
first, n = int(sys.argv[2]), int(sys.argv[3])
with open_db(sys.argv[1]) as db:
    for i in range(first, first + n):
        db.record([_row(f"{i:04d}", host=f"h{i % 7}")])
"""


def test_concurrent_writers_leave_every_row_once(tmp_path):
    """Four processes insert overlapping ranges into one new file at once:
    the schema is created once, every row lands once, the file checks out."""
    path = tmp_path / "shared.sqlite"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(first), "60"], cwd=os.getcwd())
             for first in (0, 30, 60, 0)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0, 0]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    hashes = [h for (h,) in conn.execute("SELECT content_hash FROM dumps")]
    assert sorted(hashes) == [f"fp1:{i:04d}" for i in range(120)]
    for h, report in conn.execute("SELECT content_hash, report_json FROM dumps"):
        assert report_from_dict(json.loads(report)).system.hostname == f"h{int(h[4:]) % 7}"


_OPENER = """
import sys, time
from kdebug.fleet.db import open_db
start, rounds = float(sys.argv[2]), int(sys.argv[3])
for i in range(rounds):
    while time.time() < start + i * 0.05:
        pass
    with open_db(f"{sys.argv[1]}/{i}.sqlite") as db:
        db.rows()
"""


def test_runs_that_open_one_new_file_at_the_same_moment_all_succeed(tmp_path):
    """The first opener switches a new file to WAL; SQLite answers a second
    opener's switch with 'database is locked' at once, not after the busy
    timeout (CI saw two triage runs fail so). Three processes open 25 new
    files in lock-step: every open succeeds and every file ends up in WAL."""
    start, rounds = time.time() + 2.0, 25
    procs = [subprocess.Popen([sys.executable, "-c", _OPENER, str(tmp_path), str(start), str(rounds)],
                              cwd=os.getcwd(), stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    for i in range(rounds):
        conn = sqlite3.connect(tmp_path / f"{i}.sqlite")
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        conn.close()


def test_summary_counts_first_last_and_releases():
    rows = [_row("a1", when="2026-01-05T00:00:00+00:00"),
            _row("a2", when="2026-01-01T00:00:00+00:00", release="6.12.95+deb12-cloud-amd64", host="db2"),
            _row("a3", when="2026-02-01T00:00:00+00:00"),
            _row("b1", sig="panic: NMI: Not continuing in unknown_nmi_error", reason="nmi",
                 when="2026-03-01T00:00:00+00:00")]
    rows[3] = replace(rows[3], crash_time=None)  # kdump-less dumps may not say: analysed_at stands in
    groups = summarize(rows)
    assert [(g.signature, g.count) for g in groups] == [
        ("sysrq: crash triggered in sysrq_handle_crash", 3), ("panic: NMI: Not continuing in unknown_nmi_error", 1)]
    g = groups[0]
    assert (g.first_seen, g.last_seen) == ("2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00")
    assert g.releases == ["6.1.0-57-cloud-amd64", "6.12.95+deb12-cloud-amd64"] and g.hosts == ["db2", "web1"]
    assert [d.content_hash for d in g.dumps] == ["fp1:a2", "fp1:a1", "fp1:a3"]
    assert groups[1].first_seen == rows[3].analysed_at
    doc = json.loads(summary_json(groups, "x.sqlite"))
    assert doc["dumps"] == 4 and [s["count"] for s in doc["signatures"]] == [3, 1]
    text = summary_text(groups, "x.sqlite")
    assert text.startswith("x.sqlite: 4 dumps, 2 signatures") and "a2" in text
    page = summary_html(groups, "x.sqlite", "s.html.reports")
    assert page.count('href="s.html.reports/') == 4


def test_known_entries_group_as_analysed_ones():
    """The grouping of a run is report.triage.group whether a report came from the database or not."""
    e = TriageEntry(DumpSite("/d/vmcore", "file"), 1.0, report=_report())
    k = replace(e, site=DumpSite("/e/vmcore", "file"), known=True)
    assert group([e, k]) == [{"signature": e.signature, "count": 2, "reason": "sysrq",
                              "dumps": ["/d/vmcore", "/e/vmcore"]}]
    assert TriageEntry.to_dict(k)["known"] is True


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_broker_is_one_line_within_seconds(tmp_path):
    pytest.importorskip("celery")
    (tmp_path / "vmcore").write_bytes(b"\0" * 4096)
    silent = socket.socket()  # accepts, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        for port in (_closed_port(), silent.getsockname()[1]):
            url = f"redis://127.0.0.1:{port}/0"
            for argv in (["triage", str(tmp_path), "--broker", url], ["worker", "--broker", url]):
                t0 = time.monotonic()
                r = subprocess.run([*KDEBUG, *argv], capture_output=True, text=True, timeout=60)
                assert r.returncode == 1 and "Traceback" not in r.stderr
                err = [ln for ln in r.stderr.splitlines() if ln.startswith("kdebug: error:")]
                assert len(err) == 1 and f"cannot reach the broker {url}" in err[0], r.stderr
                assert time.monotonic() - t0 < 30  # a bound on a hang, not a speed test
    finally:
        silent.close()


def test_unreachable_postgresql_is_one_line_without_its_password():
    pytest.importorskip("psycopg")
    url = f"postgresql://kdebug:secret@127.0.0.1:{_closed_port()}/postgres"
    r = subprocess.run([*KDEBUG, "triage", "--db", url, "--summary"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "secret" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"kdebug: error: --db {url.replace('secret', '***')}: connection failed")


def test_cli_usage_errors(tmp_path):
    for argv, words in ((["triage", "--summary"], "give --db"),
                        (["triage", str(tmp_path), "--format", "html"], "for --summary"),
                        (["triage", "--db", str(tmp_path / "c.sqlite")], "give a DIRECTORY"),
                        (["triage", str(tmp_path), "--db", "mysql://x/y"], "not a path"),
                        (["triage", str(tmp_path), "--broker", "amqp://x"], "not a Redis URL")):
        (tmp_path / "vmcore").write_bytes(b"\0" * 4096)
        r = subprocess.run([*KDEBUG, *argv], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert words in r.stderr.strip().splitlines()[-1], r.stderr
