"""The crash database: every analysed dump, keyed by its content, so a dump
is analysed once however often and wherever it is seen.

SQLite (the standard library's) is the embedded default, for a path or a
``sqlite:///path`` URL; a ``postgresql://`` URL uses PostgreSQL through
psycopg (the ``fleet`` extra), the only module that imports it. The schema
is versioned in ``kdebug_meta`` and created on first use; a database written
by a newer kdebug is refused with its version, never half-read.

Several triage runs may share one database: SQLite runs in WAL mode with a
busy timeout and writes in ``BEGIN IMMEDIATE`` transactions; a row is
inserted only if its content hash is new (``ON CONFLICT DO NOTHING``), so two
runs that analysed the same dump leave one row.

Schema versions: 1, then 2 (``tier``: 0 for a report made without debug
info), then 3 (``status``: "ok", or "failed" for a dump whose analysis
failed, with its cause in ``error``). An older database is migrated forward
when opened; a tier-0 or failed row is replaced by the full report
(``upgrade``) once a run has the debug info or the analysis succeeds,
keeping where and when the dump was first seen.

A database that cannot take a write (its disk full or read-only) or stays
locked past the busy timeout is one line (an OutputError or a UsageError),
never a traceback; rows committed before it stay.
"""

from __future__ import annotations

import errno
import random
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, fields
from pathlib import Path

from kdebug.errors import KdebugError, UsageError
from kdebug.fleet.records import DumpRow
from kdebug.output import output_error

SCHEMA_VERSION = 3
#: Seconds a writer waits for another to finish before giving up.
BUSY_TIMEOUT = 120
COLUMNS = tuple(f.name for f in fields(DumpRow))
_SCHEMA = """
CREATE TABLE dumps (
    content_hash TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    host TEXT NOT NULL,
    release TEXT NOT NULL,
    signature TEXT NOT NULL,
    reason TEXT NOT NULL,
    crash_time TEXT,
    analysed_at TEXT NOT NULL,
    analysed_by TEXT NOT NULL,
    seconds DOUBLE PRECISION NOT NULL,
    report_json TEXT NOT NULL,
    tier INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'ok',
    error TEXT
);
CREATE INDEX dumps_signature ON dumps (signature);
"""


#: Statements that take a database from version N to N + 1.
MIGRATIONS = {1: ("ALTER TABLE dumps ADD COLUMN tier INTEGER NOT NULL DEFAULT 1",),
              2: ("ALTER TABLE dumps ADD COLUMN status TEXT NOT NULL DEFAULT 'ok'",
                  "ALTER TABLE dumps ADD COLUMN error TEXT")}


def open_db(where: str | Path) -> CrashDB:
    """A path or ``sqlite:///path`` -> SQLite; ``postgresql://...`` -> PostgreSQL."""
    url = str(where)
    if url.startswith(("postgresql://", "postgres://")):
        return _Postgres(url)
    if "://" in url and not url.startswith("sqlite:///"):
        raise UsageError(f"--db {url}: not a path, sqlite:///PATH or postgresql:// URL")
    return _Sqlite(Path(url.removeprefix("sqlite://")) if url.startswith("sqlite:///") else Path(url))


class CrashDB:
    """What triage asks of a crash database; the subclasses speak one engine each."""

    where: str
    placeholder = "?"

    def __enter__(self) -> CrashDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self, write: bool) -> Iterator[object]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    def _init_schema(self) -> None:
        with self.transaction(write=True) as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS kdebug_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            cur.execute(self._sql("SELECT value FROM kdebug_meta WHERE key = ?"), ("schema_version",))
            row = cur.fetchone()
            if row is None:
                for stmt in filter(str.strip, _SCHEMA.split(";")):
                    cur.execute(stmt)
                cur.execute(self._sql("INSERT INTO kdebug_meta (key, value) VALUES (?, ?)"),
                            ("schema_version", str(SCHEMA_VERSION)))
                return
            version = int(row[0]) if str(row[0]).isdigit() else row[0]
            if isinstance(version, int) and version in MIGRATIONS:
                for v in range(version, SCHEMA_VERSION):
                    for stmt in MIGRATIONS[v]:
                        cur.execute(stmt)
                cur.execute(self._sql("UPDATE kdebug_meta SET value = ? WHERE key = ?"),
                            (str(SCHEMA_VERSION), "schema_version"))
                return
        if version != SCHEMA_VERSION:
            newer = isinstance(version, int) and version > SCHEMA_VERSION
            raise UsageError(f"crash database {self.where} has schema version {version}; this kdebug "
                             f"reads version {SCHEMA_VERSION}",
                             hint="upgrade kdebug" if newer else "it was not written by a kdebug release")

    def known(self, hashes: Iterable[str]) -> dict[str, DumpRow]:
        """The rows of those content hashes that are in the database."""
        wanted = sorted(set(hashes))
        out: dict[str, DumpRow] = {}
        with self.transaction(write=False) as cur:
            for i in range(0, len(wanted), 500):  # SQLite's limit on host parameters
                chunk = wanted[i:i + 500]
                cur.execute(self._sql(f"SELECT {', '.join(COLUMNS)} FROM dumps WHERE content_hash IN "
                                      f"({', '.join('?' * len(chunk))})"), chunk)
                out.update((r[0], DumpRow(*r)) for r in cur.fetchall())
        return out

    def record(self, rows: Iterable[DumpRow]) -> int:
        """Insert rows whose content hash is new; returns how many were."""
        rows = list(rows)
        if not rows:
            return 0
        added = 0
        sql = self._sql(f"INSERT INTO dumps ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
                        "ON CONFLICT (content_hash) DO NOTHING")
        with self.transaction(write=True) as cur:
            for row in rows:
                cur.execute(sql, astuple(row))
                added += max(cur.rowcount, 0)
        return added

    def upgrade(self, rows: Iterable[DumpRow]) -> int:
        """Replace the report of each row's dump where the stored one has a
        lower tier (a tier-0 report, then the full one) or failed (then
        another try's outcome); where and when the dump was first seen
        (path, analysed_at; host and crash time unless the row failed) stay.
        Returns how many rows were upgraded."""
        sql = self._sql("UPDATE dumps SET signature = ?, reason = ?, report_json = ?, tier = ?, seconds = ?, "
                        "analysed_by = ?, status = ?, error = ?, "
                        # a failed row knew nothing of the dump: what the report says
                        "host = CASE WHEN status = 'failed' THEN ? ELSE host END, "
                        "release = CASE WHEN status = 'failed' THEN ? ELSE release END, "
                        "crash_time = CASE WHEN status = 'failed' THEN ? ELSE crash_time END "
                        "WHERE content_hash = ? AND (tier < ? OR status = 'failed')")
        n = 0
        with self.transaction(write=True) as cur:
            for r in rows:
                cur.execute(sql, (r.signature, r.reason, r.report_json, r.tier, r.seconds, r.analysed_by,
                                  r.status, r.error, r.host, r.release, r.crash_time, r.content_hash, r.tier))
                n += max(cur.rowcount, 0)
        return n

    def rows(self, *, failed: bool = False) -> list[DumpRow]:
        """The analysed dumps (``failed``: also those whose analysis failed)."""
        where = "" if failed else "WHERE status = 'ok' "
        with self.transaction(write=False) as cur:
            cur.execute(f"SELECT {', '.join(COLUMNS)} FROM dumps {where}ORDER BY analysed_at, content_hash")
            return [DumpRow(*r) for r in cur.fetchall()]


class _Sqlite(CrashDB):
    def __init__(self, path: Path) -> None:
        self.where = str(path)
        if path.is_dir():
            raise UsageError(f"--db {path} is a directory; name a database file")
        if not path.parent.is_dir():
            raise UsageError(f"--db {path}: directory {path.parent} does not exist")
        try:
            # Autocommit: transactions are begun explicitly (BEGIN IMMEDIATE to write).
            self.conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT * 1000}")
            _enable_wal(self.conn)
            self._init_schema()
        except sqlite3.DatabaseError as e:
            raise UsageError(f"--db {path}: {e}", hint="is it a kdebug crash database (SQLite)?") from None

    @contextmanager
    def transaction(self, write: bool) -> Iterator[sqlite3.Cursor]:
        cur = self.conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as e:
            raise self._fault(e) from None
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException as e:
            try:
                cur.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite rolled back itself (a full disk does)
            if isinstance(e, sqlite3.Error):
                raise self._fault(e) from None
            raise

    def _fault(self, e: sqlite3.Error) -> KdebugError:
        """An SQLite error as its one line: disk full, read-only, I/O error, locked."""
        path = Path(self.where)
        what = f"the crash database {path.name}"
        code = getattr(e, "sqlite_errorcode", None)
        for errno_, codes in ((errno.ENOSPC, (sqlite3.SQLITE_FULL,)),
                              (errno.EROFS, (sqlite3.SQLITE_READONLY,)),
                              (errno.EIO, (sqlite3.SQLITE_IOERR,))):
            if code is not None and (code & 0xFF) in codes:
                return output_error(errno_, path.parent, what=what)
        if code is not None and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return UsageError(f"crash database {path} stayed locked by another process for {BUSY_TIMEOUT:g} s",
                              hint="wait for the other triage run, or give another --db")
        return UsageError(f"crash database {path}: {e}")


def _enable_wal(conn: sqlite3.Connection) -> None:
    """WAL: readers never block the writer, and a run killed mid-write leaves
    no torn rows. The switch needs the database to itself and SQLite reports
    SQLITE_BUSY at once instead of calling the busy handler when another
    connection is opening the same new file, so two runs that start together
    retry here, within the same busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.01, 0.1))


class _Postgres(CrashDB):
    placeholder = "%s"
    #: pg_advisory_xact_lock key: schema creation by concurrent first runs is serialised.
    _LOCK = 0x6B646267

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise UsageError("--db postgresql://... needs psycopg",
                             hint="pip install 'kdebug[fleet]'") from None
        self.where = _redact(url)
        self._errors = psycopg.Error
        try:
            self.conn = psycopg.connect(url, connect_timeout=5, autocommit=True)
            self._init_schema()
        except psycopg.Error as e:
            msg = " ".join(str(e).split())
            raise UsageError(f"--db {self.where}: {msg}") from None

    @contextmanager
    def transaction(self, write: bool) -> Iterator[object]:
        with self.conn.transaction(), self.conn.cursor() as cur:
            if write:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (self._LOCK,))
            yield cur


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, cred = head.partition("//")
    return f"{scheme}//{cred.split(':', 1)[0]}:***@{tail}"
