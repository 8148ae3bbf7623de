"""The crash database under faults, on real SQLite files: a failed analysis
is recorded as failed with its cause (schema 3, migrated from 2) and
replaced when a later run succeeds; a full disk, a read-only file and a
lock held past the busy timeout are each one line, never a traceback."""

from __future__ import annotations

import sqlite3
import time

import pytest

from kdebug.errors import EXIT_OUTPUT, OutputError, UsageError
from kdebug.fleet import db as fleetdb
from kdebug.fleet.db import SCHEMA_VERSION, open_db
from kdebug.fleet.records import failed_row_of
from kdebug.fleet.run import fleet_triage
from kdebug.postmortem.triage import TriageOptions
from kdebug.report.triage import TriageEntry, TriageError
from kdebug.vmcore.layouts import DumpSite
from tests.unit.test_fleet import _row


def _failed(h: str, message="the dump is truncated at 12 of 4096 bytes"):
    entry = TriageEntry(DumpSite(f"/var/crash/{h}/vmcore", "file"), 0.2,
                        error=TriageError(message, "vmcore", "it was cut short"))
    return failed_row_of(entry, f"fp1:{h}", "local@test", release="6.1.0-57-cloud-amd64")


def test_schema_2_migrates_and_a_failed_dump_is_recorded_then_upgraded(tmp_path):
    path = tmp_path / "v2.sqlite"
    conn = sqlite3.connect(path)  # as schema 2 wrote it, one row
    conn.executescript("""
        CREATE TABLE kdebug_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO kdebug_meta VALUES ('schema_version', '2');
        CREATE TABLE dumps (content_hash TEXT PRIMARY KEY, path TEXT NOT NULL, host TEXT NOT NULL,
            release TEXT NOT NULL, signature TEXT NOT NULL, reason TEXT NOT NULL, crash_time TEXT,
            analysed_at TEXT NOT NULL, analysed_by TEXT NOT NULL, seconds DOUBLE PRECISION NOT NULL,
            report_json TEXT NOT NULL, tier INTEGER NOT NULL DEFAULT 1);
        INSERT INTO dumps VALUES ('fp1:old', '/x', 'h', 'r', 'sig', 'oops', NULL, '2026-01-01T00:00:00+00:00',
            'local@x', 1.0, '{}', 1);
    """)
    conn.commit()
    conn.close()
    with open_db(path) as db:
        assert [(r.content_hash, r.status, r.error) for r in db.rows()] == [("fp1:old", "ok", None)]
        assert db.record([_failed("bad")]) == 1
        assert [r.content_hash for r in db.rows()] == ["fp1:old"]  # the summary's rows: analysed ones
        (f,) = [r for r in db.rows(failed=True) if r.status == "failed"]
        assert f.error == "vmcore: the dump is truncated at 12 of 4096 bytes (it was cut short)"
        assert f.report_json == "null" and f.signature == "" and f.release == "6.1.0-57-cloud-amd64"
        ok = _row("bad", host="db7")
        assert db.upgrade([ok]) == 1 and db.upgrade([ok]) == 0
        row = db.known(["fp1:bad"])["fp1:bad"]
        assert (row.status, row.error, row.host, row.signature) == ("ok", None, "db7", ok.signature)
        assert row.analysed_at == f.analysed_at  # first analysed when it failed
    assert sqlite3.connect(path).execute("SELECT value FROM kdebug_meta").fetchone() == (str(SCHEMA_VERSION),)


def test_fleet_run_records_a_dump_it_cannot_read(tmp_path):
    crash = tmp_path / "crash" / "202612070000"
    crash.mkdir(parents=True)
    (crash / "vmcore").write_bytes(b"\x7fELF" + b"\x00" * 60)  # a cut ELF header
    dbp = tmp_path / "c.sqlite"
    site = DumpSite(crash / "vmcore", "file")
    res = fleet_triage([site], db=str(dbp), queue=None, jobs=1, timeout=60, options=TriageOptions(crash=False))
    (entry,) = res.entries
    assert not entry.ok and res.recorded == 1
    with open_db(dbp) as db:
        (row,) = db.rows(failed=True)
    assert row.status == "failed" and row.error.startswith(f"{entry.error.stage}: {entry.error.message}")


def test_full_database_disk_is_one_line(tmp_path):
    with open_db(tmp_path / "full.sqlite") as db:
        db.conn.execute("PRAGMA max_page_count = 12")  # SQLite's own SQLITE_FULL, as a full disk gives
        db.record([_row("a")])
        with pytest.raises(OutputError) as ei:
            db.record([_row(f"b{i}", sig="x" * 4000) for i in range(40)])
        assert str(ei.value) == (f"no space left on {tmp_path} while writing the crash database full.sqlite "
                                 "(free space or choose --out elsewhere)")
        assert ei.value.exit_status == EXIT_OUTPUT
        assert [r.content_hash for r in db.rows()] == ["fp1:a"]  # what was committed stays, nothing torn


def test_read_only_database_is_one_line(tmp_path):
    path = tmp_path / "ro.sqlite"
    open_db(path).close()
    ro = fleetdb._Sqlite.__new__(fleetdb._Sqlite)
    ro.where = str(path)
    ro.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    with pytest.raises(OutputError, match=r"is on a read-only file system while writing the crash database"):
        ro.record([_row("a")])
    ro.close()


def test_database_locked_past_the_busy_timeout_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "locked.sqlite"
    open_db(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another triage run mid-write
    monkeypatch.setattr(fleetdb, "BUSY_TIMEOUT", 0.3)
    t = time.monotonic()
    with pytest.raises(UsageError) as ei:
        open_db(path)  # its schema check is a write: it waits, then says so
    assert time.monotonic() - t < 5
    assert str(ei.value) == (f"crash database {path} stayed locked by another process for 0.3 s "
                             "(wait for the other triage run, or give another --db)")
    holder.execute("ROLLBACK")

