"""Triage records (pure): one entry per dump, holding the Report its
analysis returned or the structured error it failed with, grouped by the
report's signature. The analyses themselves run in kdebug.postmortem.triage."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kdebug.errors import KdebugError
from kdebug.report.model import Report
from kdebug.vmcore.layouts import DumpSite

SCHEMA_VERSION = "1.3"  # 1.1: layout and dmesg per dump, error_stage and hint; 1.2: known (per dump, total);
# 1.3: tier per dump (0: the report was made without debug info)


@dataclass
class TriageError:
    """Why one dump could not be analysed, as the analysis said it."""

    message: str
    stage: str  # KdebugError.stage ("vmcore", "kernel", ...), or "timeout" / "internal"
    hint: str | None = None

    @classmethod
    def of(cls, e: KdebugError) -> TriageError:
        return cls(e.message, e.stage, e.hint)

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


@dataclass
class TriageEntry:
    site: DumpSite
    seconds: float
    report: Report | None = None
    error: TriageError | None = None
    #: Already in the crash database (by content): the report is the stored
    #: one, not analysed again in this run.
    known: bool = False

    @property
    def ok(self) -> bool:
        return self.report is not None

    @property
    def path(self) -> str:
        return str(self.site.vmcore)

    @property
    def signature(self) -> str:
        return self.report.signature if self.report else ""

    @property
    def reason(self) -> str:
        return self.report.panic.reason if self.report else ""

    @property
    def panic_task(self) -> str:
        task = self.report.panic.task if self.report else None
        return f"{task.pid} {task.comm}" if task else ""

    def to_dict(self) -> dict:
        return {"path": self.path, "layout": self.site.layout,
                "dmesg": str(self.site.dmesg) if self.site.dmesg else None,
                "ok": self.ok, "seconds": round(self.seconds, 3), "signature": self.signature,
                "reason": self.reason, "release": self.report.system.release if self.report else "",
                "panic_task": self.panic_task, "log_source": self.report.log_source if self.report else None,
                "error": str(self.error) if self.error else "",
                "error_stage": self.error.stage if self.error else None, "known": self.known,
                "tier": self.report.tier if self.report else None}


def group(entries: list[TriageEntry]) -> list[dict]:
    """Groups by signature, biggest first; failures form one group per error."""
    groups: dict[str, list[TriageEntry]] = {}
    for e in entries:
        key = e.signature if e.ok else f"(failed) {e.error}"
        groups.setdefault(key, []).append(e)
    out = [{"signature": k, "count": len(v), "reason": v[0].reason if v[0].ok else "failed",
            "dumps": [e.path for e in v]} for k, v in groups.items()]
    return sorted(out, key=lambda g: (g["reason"] == "failed", -g["count"], g["signature"]))


def triage_json(entries: list[TriageEntry]) -> str:
    ok = [e for e in entries if e.ok]
    known = sum(e.known for e in entries)
    doc = {"schema_version": SCHEMA_VERSION, "generator": "kdebug triage", "total": len(entries),
           "analysed": len(ok) - known, "known": known, "failed": len(entries) - len(ok), "groups": group(entries),
           "dumps": [e.to_dict() for e in entries]}
    return json.dumps(doc, indent=2) + "\n"


def triage_text(entries: list[TriageEntry]) -> str:
    from tabulate import tabulate

    groups = group(entries)
    rows = [(g["count"], g["reason"], g["signature"]) for g in groups]
    per = [(_short(e), e.site.layout, _status(e), f"{e.seconds:.1f}",
            e.signature if e.ok else str(e.error)) for e in entries]
    ok = sum(e.ok for e in entries)
    known = sum(e.known for e in entries)
    return (f"{len(entries)} dumps, {ok - known} analysed, " + (f"{known} known, " if known else "")
            + f"{len(entries) - ok} failed, {len(groups)} groups\n\n"
            + tabulate(rows, headers=["count", "reason", "signature"], disable_numparse=True) + "\n\n"
            + tabulate(per, headers=["dump", "layout", "status", "seconds", "signature / error"],
                       disable_numparse=True)
            + "\n")


def _status(e: TriageEntry) -> str:
    if not e.ok:
        return "FAILED"
    return ("known" if e.known else "ok") + (" (tier 0: no debug info)" if e.report.tier == 0 else "")


def _short(e: TriageEntry) -> str:
    """The dump's directory and name: in /var/crash the directory is the stamp."""
    p = Path(e.path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name
