"""Shared text formatting of records: one look for gdb, CLI and reports."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict

from kdebug.model import FrameRecord, ModuleRecord, PrintkRecord, TaskRecord

FORMATS = ("table", "json")


def _table(rows, headers) -> str:
    cells = [[str(c) for c in r] for r in rows]
    fast = ascii_table(cells, [str(h) for h in headers], "plain")  # kd-ps prints thousands of rows inside gdb
    if fast is not None:
        return fast
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True)


def ascii_table(rows, headers, fmt: str) -> str | None:
    """tabulate's "plain" or "simple" format (disable_numparse) byte for byte,
    ~15x faster, for string cells of printable ASCII; None for anything else,
    which the caller gives tabulate (its import alone costs 0.1-0.3 s, more
    than a tier-0 report's text). Like tabulate: cells stripped, a header
    padded by 2, left-aligned, 2 spaces between columns, lines rstripped;
    "simple" rules the header off, or frames a table without one."""
    if fmt not in ("plain", "simple"):
        return None
    headers = list(headers)
    cells = [list(r) for r in rows]
    if not all(isinstance(c, str) and c.isascii() and c.isprintable()
               for c in (*headers, *(c for r in cells for c in r))):
        return None
    cells = [[c.strip() for c in r] for r in cells]
    ncols = len(headers) if headers else max((len(r) for r in cells), default=0)
    if not ncols or any(len(r) != ncols for r in cells):
        return None
    widths = [len(h) + 2 for h in headers] if headers else [0] * ncols
    for r in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths).rstrip()
    body = [line(r) for r in cells]
    if not headers:
        return "\n".join([rule, *body, rule] if fmt == "simple" else body)
    return "\n".join([line(headers), *([rule] if fmt == "simple" else []), *body])


def format_tasks(tasks: Iterable[TaskRecord], fmt: str = "table", *, rss: bool = False) -> str:
    tasks = list(tasks)
    if fmt == "json":
        return json.dumps([t.to_dict() for t in tasks], indent=2)
    rows = [(t.pid, t.ppid, t.state, t.cpu, f"{t.address:#x}",
             *((("-" if t.rss_kb is None else t.rss_kb),) if rss else ()),
             f"[{t.comm}]" if t.is_kthread else t.comm) for t in tasks]
    return _table(rows, ["PID", "PPID", "ST", "CPU", "TASK", *(["RSS_KB"] if rss else []), "COMM"])


def format_dmesg(records: Iterable[PrintkRecord], fmt: str = "table", *, levels: bool = False) -> str:
    recs = list(records)
    if fmt == "json":
        return json.dumps([r.to_dict() for r in recs], indent=2)
    lines = []
    for r in recs:
        ts = f"[{r.timestamp_ns // 1_000_000_000:5d}.{r.timestamp_ns % 1_000_000_000 // 1000:06d}]"
        prefix = f"<{r.level}>" if levels else ""
        for i, part in enumerate(r.text.split("\n")):
            lines.append(f"{prefix}{ts} {part}" if i == 0 else f"{prefix}{' ' * len(ts)} {part}")
    return "\n".join(lines)


def format_modules(mods: Iterable[ModuleRecord], fmt: str = "table") -> str:
    mods = list(mods)
    if fmt == "json":
        return json.dumps([m.to_dict() for m in mods], indent=2)
    rows = [(m.name, m.size, m.refcount, ",".join(m.used_by + ["[permanent]"] * m.permanent) or "-", f"{m.address:#x}",
             m.taints or "-") for m in mods]
    return _table(rows, ["MODULE", "SIZE", "USED", "BY", "ADDRESS", "TAINT"])


def format_frame(f: FrameRecord) -> str:
    where = f.function or "??"
    if f.inline:
        where += " (inlined)"
    elif f.function:
        where += f"+{f.offset:#x}" + (f"/{f.size:#x}" if f.size else "")
    if f.module:
        where += f" [{f.module}]"
    src = f" at {f.file}:{f.line}" if f.file else ""
    # pc 0 with a name: a frame read from a printed Call Trace, whose address is
    # not known (FrameRecord.pc); a frame at address 0 has no name and shows it
    pc = "" if f.pc == 0 and f.function else f"{f.pc:#018x} "
    return f"#{f.index:<2} {pc}{where}{src}"


def format_backtrace(frames: Iterable[FrameRecord], fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps([asdict(f) for f in frames], indent=2)
    return "\n".join(format_frame(f) for f in frames)
