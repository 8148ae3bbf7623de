"""A triage run with a crash database and/or a broker: fingerprint each dump,
skip those the database knows, analyse the rest (locally, with the same
runner as plain ``kdebug triage``, or through the queue), record them, and
hand back one TriageEntry per dump, in the order found, for the same
grouping and rendering as a local run."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from kdebug.errors import KdebugError
from kdebug.fleet.db import CrashDB, open_db
from kdebug.fleet.fingerprint import fingerprint
from kdebug.fleet.records import DumpRow, failed_row_of, row_of
from kdebug.fleet.summary import SignatureSummary, report_file, summarize
from kdebug.fleet.work import NO_WORKER
from kdebug.postmortem.triage import TriageOptions, triage
from kdebug.report.render import render_html
from kdebug.report.triage import TriageEntry, TriageError
from kdebug.vmcore.info import read_dump
from kdebug.vmcore.layouts import DumpSite


@dataclass
class FleetRun:
    entries: list[TriageEntry]
    analysed: int  # dumps analysed in this run
    known: int  # dumps whose report came from the database
    recorded: int  # rows this run added to the database
    upgraded: int = 0  # tier-0 rows this run replaced with the full report


class DumpQueue(Protocol):
    """Where dumps go to be analysed by workers (kdebug.fleet.queue.connect
    gives the Celery one): ``analyse`` hands back (entry, worker name) per
    (site, release), each also to ``progress`` as it arrives."""

    def analyse(self, sites: list[tuple[DumpSite, str | None]], *, options: TriageOptions, timeout: float,
                progress: Callable[[TriageEntry, str], None] | None = None) -> list[tuple[TriageEntry, str]]: ...


def fleet_triage(sites: list[DumpSite], *, db: str | None, queue: DumpQueue | None, jobs: int, timeout: float,
                 options: TriageOptions, progress: Callable[[TriageEntry], None] | None = None) -> FleetRun:
    """``queue`` None: every dump is analysed here, as plain triage does.
    The caller connects it first, so an unreachable broker is said before
    any dump is read."""
    crash_db = open_db(db) if db else None
    try:
        return _run(sites, crash_db, queue, jobs, timeout, options, progress)
    finally:
        if crash_db is not None:
            crash_db.close()


def _run(sites: list[DumpSite], crash_db: CrashDB | None, queue: DumpQueue | None, jobs: int, timeout: float,
         options: TriageOptions, progress: Callable[[TriageEntry], None] | None) -> FleetRun:
    entries, hashes, stored = _on_record(sites, crash_db, options)
    first, todo = _to_analyse(len(sites), entries, hashes)
    # Each report is recorded as it arrives: a run cut short keeps what it analysed.
    where = {id(sites[i]): i for i in todo}
    recorded = upgraded = 0
    local: list[int] = []  # dumps no worker takes: their tier-0 report is made here

    def arrived(entry: TriageEntry, by: str) -> None:
        nonlocal recorded, upgraded
        i = where[id(entry.site)]
        if entry.error is not None and entry.error.stage == NO_WORKER:
            local.append(i)
            return
        if i in stored and entry.ok and stored[i].status == "ok" and entry.report.tier <= stored[i].tier:
            entry = _known(sites[i], stored[i])  # still no debug info: the stored report stands
        entries[i] = entry
        if crash_db is not None and entry.ok and i in hashes and not entry.known:
            row = row_of(entry, hashes[i], by)
            if i in stored:
                upgraded += crash_db.upgrade([row])
            else:
                recorded += crash_db.record([row])
        elif crash_db is not None and entry.error is not None and i in hashes:
            # A failed analysis is on record too, with its cause (tried again next run).
            row = failed_row_of(entry, hashes[i], by, release=_release(sites[i]) or "")
            if i in stored:
                crash_db.upgrade([row])
            else:
                recorded += crash_db.record([row])
        if progress:
            progress(entry)

    if queue is not None and todo:
        queue.analyse([(sites[i], _release(sites[i])) for i in todo], options=options, timeout=timeout,
                      progress=arrived)
        if local:  # a tier-0 report needs no debug info, so no worker: made here
            triage([sites[i] for i in local], jobs=jobs, timeout=timeout,
                   options=replace(options, debuginfo=False),
                   progress=lambda e: arrived(e, f"local@{socket.gethostname()}"))
    elif todo:
        by = f"local@{socket.gethostname()}"
        triage([sites[i] for i in todo], jobs=jobs, timeout=timeout, options=options,
               progress=lambda e: arrived(e, by))
    for i in range(len(sites)):
        if i not in entries:  # a second copy of a dump analysed in this run
            e = entries[first[hashes[i]]]
            entries[i] = TriageEntry(sites[i], e.seconds, report=e.report, error=e.error, known=e.ok)
    out = [entries[i] for i in range(len(sites))]
    return FleetRun(out, len(todo), sum(e.known for e in out), recorded, upgraded)


def _on_record(sites: list[DumpSite], crash_db: CrashDB | None, options: TriageOptions
               ) -> tuple[dict[int, TriageEntry], dict[int, str], dict[int, DumpRow]]:
    """(entries of dumps the database already answers or that cannot be
    read, each readable dump's fingerprint, stored rows to analyse again)."""
    entries: dict[int, TriageEntry] = {}
    hashes: dict[int, str] = {}
    stored: dict[int, DumpRow] = {}  # tier-0 and failed rows being analysed again
    if crash_db is None:
        return entries, hashes, stored
    for i, s in enumerate(sites):
        try:
            hashes[i] = fingerprint(s.vmcore)
        except OSError as e:
            entries[i] = TriageEntry(s, 0.0, error=TriageError(f"cannot read {s.vmcore}: {e.strerror}", "input"))
    rows = crash_db.known(hashes.values())
    for i, h in hashes.items():
        # A tier-0 row is analysed again: the debug info may have arrived since.
        # So is a failed one: the cause may be gone (a timeout, a missing vmlinux).
        if h in rows and rows[h].status == "ok" and (rows[h].tier >= 1 or not options.debuginfo):
            entries[i] = _known(sites[i], rows[h])
        elif h in rows:
            stored[i] = rows[h]
    return entries, hashes, stored


def _to_analyse(count: int, entries: dict[int, TriageEntry], hashes: dict[int, str]
                ) -> tuple[dict[str, int], list[int]]:
    """One analysis per content: a copy of a dump under another name shares
    the first one's ({fingerprint: first index}, the indexes to analyse)."""
    first: dict[str, int] = {}
    todo = []
    for i in range(count):
        if i in entries:
            continue
        h = hashes.get(i)
        if h is None or h not in first:
            if h is not None:
                first[h] = i
            todo.append(i)
    return first, todo


def _known(site: DumpSite, row: DumpRow) -> TriageEntry:
    return TriageEntry(site, row.seconds, report=row.report(), known=True)


def _release(site: DumpSite) -> str | None:
    """The release in the dump's VMCOREINFO, for routing (None when unreadable)."""
    try:
        return read_dump(site.vmcore).release
    except (OSError, KdebugError):
        return None


@dataclass
class SummaryPages:
    groups: list[SignatureSummary]
    #: Report pages for the HTML summary: file name -> HTML, in ``reports_dir``.
    reports: dict[str, str]


def db_summary(db: str, *, with_reports: bool = False) -> SummaryPages:
    with open_db(db) as crash_db:
        rows = crash_db.rows()
    reports = {report_file(r.content_hash): render_html(r.report()) for r in rows} if with_reports else {}
    return SummaryPages(summarize(rows), reports)
