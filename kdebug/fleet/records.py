"""What the crash database holds, as records (pure: standard library and the
report records only)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from kdebug.report.load import report_from_dict
from kdebug.report.model import Report
from kdebug.report.triage import TriageEntry


@dataclass(frozen=True)
class DumpRow:
    """One analysed dump, keyed by its content (fingerprint.py)."""

    content_hash: str
    path: str  # where it was first seen
    host: str  # the crashed machine's hostname, from the dump
    release: str
    signature: str
    reason: str
    crash_time: str | None  # ISO 8601 UTC, the crashed kernel's wall clock
    analysed_at: str  # ISO 8601 UTC
    analysed_by: str  # "local@<host>" or the worker's node name
    seconds: float
    report_json: str  # Report.to_dict() as JSON (kdebug/report/schema/report-v1.json)
    #: The report's tier: 1 with debug info, 0 from the dump alone (upgraded
    #: in place when a later run has the debug info).
    tier: int = 1
    #: "ok", or "failed": the analysis failed and ``error`` says why
    #: ("stage: message"); such a row has no report and is tried again.
    status: str = "ok"
    error: str | None = None

    @property
    def seen(self) -> str:
        """When the crash happened; when it was analysed if the dump does not say."""
        return self.crash_time or self.analysed_at

    def report(self) -> Report:
        return report_from_dict(json.loads(self.report_json))


def row_of(entry: TriageEntry, content_hash: str, analysed_by: str, now: datetime | None = None) -> DumpRow:
    """The row for an entry whose analysis succeeded."""
    r = entry.report
    assert r is not None, "only analysed dumps are recorded"
    when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    return DumpRow(content_hash, entry.path, r.system.hostname, r.system.release, r.signature, r.panic.reason,
                   r.system.crash_time, when, analysed_by, round(entry.seconds, 3),
                   json.dumps(r.to_dict(), sort_keys=True), r.tier)


def failed_row_of(entry: TriageEntry, content_hash: str, analysed_by: str, *, host: str = "",
                  release: str = "", now: datetime | None = None) -> DumpRow:
    """The row for an entry whose analysis failed: its cause, no report.
    ``host``/``release``: what the dump's VMCOREINFO says, when it could be read."""
    e = entry.error
    assert e is not None, "only failed dumps are recorded as failed"
    when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    return DumpRow(content_hash, entry.path, host, release, "", e.message, None, when, analysed_by,
                   round(entry.seconds, 3), "null", 0, "failed", f"{e.stage}: {e}")
