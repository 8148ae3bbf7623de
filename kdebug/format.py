"""Shared text formatting of records: one look for gdb, CLI and reports."""

from __future__ import annotations

import json
from collections.abc import Iterable

from kdebug.model import FrameRecord, ModuleRecord, PrintkRecord, TaskRecord

FORMATS = ("table", "json")


def _table(rows, headers) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True)


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
    rows = [(m.name, m.size, m.refcount, ",".join(m.used_by) or "-", f"{m.address:#x}",
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
    return f"#{f.index:<2} {f.pc:#018x} {where}{src}"


def format_backtrace(frames: Iterable[FrameRecord]) -> str:
    return "\n".join(format_frame(f) for f in frames)
