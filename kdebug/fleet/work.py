"""One dump's analysis as a fleet worker runs it, and its result as it
travels back: the Report's JSON form or the TriageError, never rendered text.
No queue library here (queue.py calls this)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from kdebug.errors import KdebugError
from kdebug.postmortem.build import postmortem
from kdebug.postmortem.triage import TriageOptions
from kdebug.report.load import report_from_dict
from kdebug.report.triage import TriageEntry, TriageError
from kdebug.vmcore.layouts import DumpSite

#: TriageError.stage of a dump whose release no worker takes: the triage run
#: makes its tier-0 report itself (that needs no debug info).
NO_WORKER = "no-worker"


def options_to_dict(o: TriageOptions) -> dict:
    return {"vmlinux": str(o.vmlinux) if o.vmlinux else None, "crash": o.crash, "crash_timeout": o.crash_timeout,
            "debuginfo": o.debuginfo}


def options_of(d: dict) -> TriageOptions:
    return TriageOptions(vmlinux=Path(d["vmlinux"]) if d.get("vmlinux") else None, crash=bool(d["crash"]),
                         crash_timeout=float(d["crash_timeout"]), debuginfo=bool(d.get("debuginfo", True)))


def site_of(d: dict) -> DumpSite:
    return DumpSite(Path(d["vmcore"]), d["layout"], Path(d["dmesg"]) if d.get("dmesg") else None,
                    d.get("incomplete", ""))


def analyse_site(site: dict, options: dict, worker: str) -> dict:
    """Runs on the worker, in its pool process: the analysis the local run
    makes of one dump (postmortem of the dump's path). A KdebugError is this
    dump's answer; anything else propagates to the queue layer."""
    o = options_of(options)
    t0 = time.monotonic()
    try:
        report = postmortem(site_of(site).vmcore, vmlinux=o.vmlinux, crash=o.crash, crash_timeout=o.crash_timeout,
                            debuginfo=o.debuginfo)
    except KdebugError as e:
        return failed(TriageError.of(e), time.monotonic() - t0, worker)
    return {"report": report.to_dict(), "seconds": round(time.monotonic() - t0, 3), "worker": worker}


def failed(error: TriageError, seconds: float, worker: str) -> dict:
    return {"error": asdict(error), "seconds": round(seconds, 3), "worker": worker}


def entry_of(site: DumpSite, result: dict) -> TriageEntry:
    """The worker's result -> the entry the local run would have made."""
    if "report" in result:
        return TriageEntry(site, float(result["seconds"]), report=report_from_dict(result["report"]))
    return TriageEntry(site, float(result["seconds"]), error=TriageError(**result["error"]))
