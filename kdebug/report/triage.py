"""Triage many dumps: find them, analyse each in its own process with a
timeout (one bad or hung dump costs only itself), group by signature."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kdebug.errors import UsageError

#: First bytes of the formats kdebug reads (ELF, kdump-compressed, flattened).
_MAGICS = (b"\x7fELF", b"KDUMP   ", b"makedumpfile")
_NAMES = ("vmcore", "dump")


@dataclass
class TriageEntry:
    path: str
    ok: bool
    seconds: float
    signature: str = ""
    reason: str = ""
    release: str = ""
    panic_task: str = ""
    error: str = ""
    report: dict | None = field(default=None, repr=False)


def find_dumps(directory: Path) -> list[Path]:
    """Capture directories (with a ``vmcore``) and files that look like dumps,
    by name or by their first bytes; sorted, not recursive beyond one level."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    found = []
    for p in sorted(directory.iterdir()):
        if p.is_dir():
            if (p / "vmcore").exists():
                found.append(p)
        elif p.is_file():
            try:
                with open(p, "rb") as f:
                    head = f.read(12)
            except OSError:
                head = b""
            if any(n in p.name.lower() for n in _NAMES) or any(head.startswith(m) for m in _MAGICS):
                found.append(p)
    return found


def _analyse(path: Path, timeout: float, extra: list[str]) -> TriageEntry:
    argv = [sys.executable, "-m", "kdebug.cli.main", "postmortem", str(path), "--format", "json",
            "--quiet", *extra]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "KDEBUG_DEBUG": ""})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the analysis and its crash child
        except OSError:
            pass
        proc.communicate()
        return TriageEntry(str(path), False, time.monotonic() - t0, error=f"timed out after {timeout:g} s")
    secs = time.monotonic() - t0
    if proc.returncode != 0:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        msg = lines[-1] if lines else f"exit status {proc.returncode}"
        return TriageEntry(str(path), False, secs, error=msg.removeprefix("kdebug: error: "))
    try:
        rep = json.loads(out)
    except ValueError:
        return TriageEntry(str(path), False, secs, error="the analysis printed no valid JSON")
    task = rep["panic"].get("task") or {}
    return TriageEntry(str(path), True, secs, rep["signature"], rep["panic"]["reason"],
                       rep["system"]["release"], f"{task.get('pid', '')} {task.get('comm', '')}".strip(),
                       report=rep)


def triage(paths: list[Path], *, jobs: int = 2, timeout: float = 300.0, extra: list[str] | None = None,
           progress=None) -> list[TriageEntry]:
    extra = extra or []
    results: list[TriageEntry] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_analyse, p, timeout, extra): p for p in paths}
        for fut in futures:
            entry = fut.result()
            if progress:
                progress(entry)
            results.append(entry)
    return results


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
    doc = {"schema_version": "1.0", "generator": "kdebug triage", "total": len(entries), "analysed": len(ok),
           "failed": len(entries) - len(ok), "groups": group(entries),
           "dumps": [{k: v for k, v in asdict(e).items() if k != "report"} for e in entries]}
    return json.dumps(doc, indent=2) + "\n"


def triage_text(entries: list[TriageEntry]) -> str:
    from tabulate import tabulate

    groups = group(entries)
    rows = [(g["count"], g["reason"], g["signature"]) for g in groups]
    per = [(Path(e.path).name, "ok" if e.ok else "FAILED", f"{e.seconds:.1f}",
            e.signature if e.ok else e.error) for e in entries]
    ok = sum(e.ok for e in entries)
    return (f"{len(entries)} dumps, {ok} analysed, {len(entries) - ok} failed, {len(groups)} groups\n\n"
            + tabulate(rows, headers=["count", "reason", "signature"], disable_numparse=True) + "\n\n"
            + tabulate(per, headers=["dump", "status", "seconds", "signature / error"], disable_numparse=True)
            + "\n")
