"""The crash database's summary (pure): signatures by count, when each was
first and last seen, on which releases and hosts, and the dumps behind it;
then text, JSON or a static HTML page that links each signature to its
reports."""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass

from kdebug.fleet.records import DumpRow

SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class DumpRef:
    content_hash: str
    path: str
    host: str
    release: str
    seen: str


@dataclass(frozen=True)
class SignatureSummary:
    signature: str
    reason: str
    count: int
    first_seen: str
    last_seen: str
    releases: list[str]
    hosts: list[str]
    dumps: list[DumpRef]  # oldest first


def summarize(rows: list[DumpRow]) -> list[SignatureSummary]:
    """Biggest group first, then the most recently seen."""
    by_sig: dict[str, list[DumpRow]] = {}
    for r in rows:
        by_sig.setdefault(r.signature, []).append(r)
    out = []
    for sig, rs in by_sig.items():
        rs.sort(key=lambda r: (r.seen, r.content_hash))
        out.append(SignatureSummary(sig, rs[0].reason, len(rs), rs[0].seen, rs[-1].seen,
                                    sorted({r.release for r in rs}), sorted({r.host for r in rs}),
                                    [DumpRef(r.content_hash, r.path, r.host, r.release, r.seen) for r in rs]))
    out.sort(key=lambda s: s.last_seen, reverse=True)
    return sorted(out, key=lambda s: s.count, reverse=True)


def report_file(content_hash: str) -> str:
    """The report page's name beside the HTML summary (method prefix dropped)."""
    return f"{content_hash.split(':')[-1][:16]}.html"


def summary_json(groups: list[SignatureSummary], source: str) -> str:
    doc = {"schema_version": SCHEMA_VERSION, "generator": "kdebug triage --summary", "database": source,
           "dumps": sum(g.count for g in groups), "signatures": [asdict(g) for g in groups]}
    return json.dumps(doc, indent=2) + "\n"


def summary_text(groups: list[SignatureSummary], source: str) -> str:
    from tabulate import tabulate

    rows = [(g.count, g.reason, g.signature, g.first_seen, g.last_seen, ", ".join(g.releases),
             " ".join(d.content_hash.split(":")[-1][:12] for d in g.dumps)) for g in groups]
    head = f"{source}: {sum(g.count for g in groups)} dumps, {len(groups)} signatures\n\n"
    return head + tabulate(rows, headers=["count", "reason", "signature", "first seen", "last seen", "releases",
                                          "dumps (content hash)"], disable_numparse=True) + "\n"


def summary_html(groups: list[SignatureSummary], source: str, reports_dir: str) -> str:
    """One static page; each dump links to ``reports_dir/<report_file>``."""
    e = html.escape
    body = []
    for i, g in enumerate(groups):
        links = "".join(f'<li><a href="{e(reports_dir)}/{e(report_file(d.content_hash))}">{e(d.seen)}</a> '
                        f'{e(d.host)} {e(d.release)} <code>{e(d.path)}</code></li>' for d in g.dumps)
        body.append(f'<tr id="sig{i}"><td class="n">{g.count}</td><td>{e(g.reason)}</td>'
                    f'<td><b>{e(g.signature)}</b><details><summary>{g.count} report{"s" * (g.count > 1)}</summary>'
                    f'<ul>{links}</ul></details></td><td class="t">{e(g.first_seen)}</td>'
                    f'<td class="t">{e(g.last_seen)}</td><td class="t">{e(", ".join(g.releases))}</td></tr>')
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kdebug crash summary</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}"
            "td.n{text-align:right}td.t{white-space:nowrap}code{font-size:90%}</style></head><body>"
            f"<h1>kdebug crash summary</h1><p>{e(source)}: {sum(g.count for g in groups)} dumps, "
            f"{len(groups)} signatures</p><table><tr><th>count</th><th>reason</th><th>signature</th>"
            f"<th>first seen</th><th>last seen</th><th>releases</th></tr>{''.join(body)}</table>"
            "</body></html>\n")
