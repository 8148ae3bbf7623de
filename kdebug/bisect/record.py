"""A bisection's record: the evidence table and the result, and their
text, JSON and HTML forms (pure)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field

from kdebug.bisect.verdict import Run, Target, one_line

#: How a bisection ended. FOUND exits 0; every other one is a range that
#: could not be bisected (or a bisection stopped), and exits non-zero.
FOUND = "found"
ENDS = {
    "found": "first bad commit found",
    "bad-end-good": "the bad end does not show the crash",
    "bad-end-skip": "the bad end cannot be tested",
    "good-end-bad": "a good end shows the crash",
    "good-end-skip": "a good end cannot be tested",
    "all-skipped": "every commit left was skipped",
}


@dataclass
class Commit:
    hash: str
    subject: str = ""
    author: str = ""
    date: str = ""

    @property
    def short(self) -> str:
        return self.hash[:12]

    def to_dict(self) -> dict:
        return {"hash": self.hash, "subject": self.subject, "author": self.author, "date": self.date}

    @classmethod
    def from_dict(cls, d: dict) -> Commit:
        return cls(d["hash"], d.get("subject", ""), d.get("author", ""), d.get("date", ""))


@dataclass
class Row:
    """One tested commit: the evidence for its verdict."""

    label: str  # "bad end", "good end", "step 3"
    commit: Commit
    build_seconds: float | None  # None: built before (cached)
    runs: list[Run]
    verdict: str
    reason: str

    @property
    def titles(self) -> list[str]:
        return list(dict.fromkeys(t for r in self.runs for t in r.titles))

    def to_dict(self) -> dict:
        return {"label": self.label, "commit": self.commit.to_dict(),
                "build_seconds": None if self.build_seconds is None else round(self.build_seconds, 2),
                "runs": [r.to_dict() for r in self.runs], "titles": self.titles,
                "verdict": self.verdict, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict) -> Row:
        return cls(d["label"], Commit.from_dict(d["commit"]), d.get("build_seconds"),
                   [Run.from_dict(r) for r in d.get("runs", [])], d["verdict"], d.get("reason", ""))


@dataclass
class Result:
    outcome: str  # a key of ENDS
    message: str  # one line: what happened (the error line when not FOUND)
    target: Target | None
    rows: list[Row] = field(default_factory=list)
    first_bad: Commit | None = None
    candidates: list[Commit] = field(default_factory=list)  # all-skipped: any of these
    source: str = ""
    worktree: str = ""
    kernel: str = ""
    excerpt: str = ""  # the console of one bad run at the first bad commit: its report
    seconds: float = 0.0
    dump: dict | None = None  # --dump: {"directory", "signature"} or {"error"}

    @property
    def ok(self) -> bool:
        return self.outcome == FOUND

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "message": self.message,
                "target": self.target.to_dict() if self.target else None,
                "first_bad": self.first_bad.to_dict() if self.first_bad else None,
                "candidates": [c.to_dict() for c in self.candidates],
                "source": self.source, "worktree": self.worktree, "kernel": self.kernel,
                "seconds": round(self.seconds, 1), "excerpt": self.excerpt, "dump": self.dump,
                "evidence": [r.to_dict() for r in self.rows]}


def _build(row: Row) -> str:
    return "cached" if row.build_seconds is None else f"{row.build_seconds:.1f}"


def _runs(row: Row) -> str:
    if not row.runs:
        return "0"
    secs = sum(r.seconds for r in row.runs)
    return f"{len(row.runs)} ({secs:.0f}s)"


def table_rows(rows: list[Row]) -> list[list[str]]:
    out = []
    for r in rows:
        seen = "; ".join(r.titles) or ("-" if r.runs else one_line(r.reason, 60))
        out.append([r.label, r.commit.short, one_line(r.commit.subject, 40), _build(r), _runs(r),
                    one_line(seen, 70), r.verdict])
    return out


HEADERS = ["step", "commit", "subject", "build s", "runs", "titles seen", "verdict"]


def format_table(rows: list[Row]) -> str:
    cells = [HEADERS, *table_rows(rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def format_text(res: Result) -> str:
    lines = []
    if res.ok and res.first_bad is not None:
        c = res.first_bad
        lines += [f"first bad commit: {c.hash}", f"  subject: {c.subject}", f"  author:  {c.author}"]
        if c.date:
            lines.append(f"  date:    {c.date}")
    else:
        lines.append(f"not bisected: {res.message}")
        for c in res.candidates:
            lines.append(f"  could be: {c.short} {c.subject}")
    if res.target is not None:
        lines.append(f"target: {res.target.text}" + ("" if res.target.exact else " (--signature)"))
    if res.kernel:
        lines.append(f"kernel: {res.kernel}")
    if res.worktree:
        lines.append(f"worktree: {res.worktree} (git -C {res.worktree} bisect log)")
    if res.dump:
        lines.append(f"dump: {res.dump.get('directory')} ({res.dump.get('signature') or res.dump.get('error')})")
    lines += ["", format_table(res.rows)]
    if res.excerpt:
        lines += ["", "report of a bad run at the first bad commit (console):", res.excerpt.rstrip()]
    return "\n".join(lines) + "\n"


def format_json(res: Result) -> str:
    return json.dumps(res.to_dict(), indent=2) + "\n"


def format_html(res: Result) -> str:
    e = html.escape
    if res.ok and res.first_bad is not None:
        c = res.first_bad
        head = (f"<h1>First bad commit <code>{e(c.short)}</code></h1><p>{e(c.subject)}<br>{e(c.author)}"
                f" {e(c.date)}<br><code>{e(c.hash)}</code></p>")
    else:
        head = f"<h1>Not bisected</h1><p>{e(res.message)}</p>" + "".join(
            f"<p>could be <code>{e(c.short)}</code> {e(c.subject)}</p>" for c in res.candidates)
    target = f"<p>Target: <code>{e(res.target.text)}</code></p>" if res.target else ""
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in table_rows(res.rows))
    table = ("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in HEADERS) + f"</tr>{body}</table>")
    excerpt = f"<h2>Report of a bad run</h2><pre>{e(res.excerpt)}</pre>" if res.excerpt else ""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>kdebug bisect</title><style>"
            "body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
            "table{border-collapse:collapse}</style></head><body>"
            f"{head}{target}<p>Kernel: {e(res.kernel)}</p>{table}{excerpt}</body></html>\n")


FORMATTERS = {"text": format_text, "json": format_json, "html": format_html}
