"""Report -> text (tabulate), JSON, Markdown, self-contained HTML (pure).

Tables of tasks, frames, modules and log lines come from kdebug/format.py, so
they read the same here as in gdb's kd-* commands.
"""

from __future__ import annotations

import html
import json

from kdebug.format import format_backtrace, format_dmesg, format_modules, format_tasks
from kdebug.report.model import Report

FORMATS = ("text", "json", "md", "html")


def _table(rows, headers, fmt: str = "simple") -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)


def _kb(kb: int | None) -> str:
    if kb is None:
        return "-"
    return f"{kb / 1024:.1f} MiB" if kb >= 1024 else f"{kb} KiB"


def system_rows(r: Report) -> list[tuple[str, str]]:
    s = r.system
    return [("release", s.release), ("version", s.version), ("build-id", s.build_id or "-"),
            ("architecture", s.arch), ("hostname", s.hostname), ("CPUs", str(s.cpus)),
            ("memory", _kb(s.memory_kb)),
            ("uptime", f"{s.uptime_s:.1f} s" if s.uptime_s is not None else "-"),
            ("crash time", s.crash_time or "-"), ("taint", s.taint or "not tainted"),
            ("command line", s.cmdline), ("KASLR offset", f"{s.kaslr_offset:#x}" if s.kaslr_offset else "-"),
            ("vmcore", f"{s.vmcore} ({s.vmcore_format})"), ("vmlinux", s.vmlinux)]


def panic_rows(r: Report) -> list[tuple[str, str]]:
    p = r.panic
    task = f"{p.task.pid} {p.task.comm}" if p.task else "-"
    return [("message", p.message or "-"), ("reason", p.reason),
            ("CPU", "-" if p.cpu is None else str(p.cpu)), ("task", task)]


def task_state_rows(r: Report) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in r.tasks.by_state.items()] if r.tasks else []


def memory_rows(r: Report) -> list[tuple[str, str]]:
    m = r.memory
    if m is None:
        return []
    return [("total", _kb(m.total_kb)), ("free", _kb(m.free_kb)), ("page cache", _kb(m.cached_kb)),
            ("slab", _kb(m.slab_kb)), ("anonymous", _kb(m.anon_kb))]


def crosscheck_rows(r: Report) -> list[tuple[str, str, str, str]]:
    return [(c.item, c.drgn, c.crash, c.verdict + (f" ({c.note})" if c.note else "")) for c in r.crosscheck]


def engine_rows(r: Report) -> list[tuple[str, str, str, str]]:
    return [(e.name, e.version or "-", "ok" if e.ok else "failed", f"{e.seconds:.1f} s", e.error or "")
            for e in r.engines]


def log_title(r: Report) -> str:
    """The log section's title says where the log came from when it is not the dump."""
    if r.log_source == "vmcore":
        return "Log (tail)"
    return f"Log (tail) from {r.log_source}, saved beside the dump (its own log is unreadable)"


def render_text(r: Report) -> str:
    out = [f"kdebug post-mortem: {r.signature}", ""]

    def section(title: str, body: str) -> None:
        out.extend([f"== {title} ==", body, ""])

    section("System", _table(system_rows(r), [], "plain"))
    section("Panic", _table(panic_rows(r), [], "plain") + "\n\n" + format_backtrace(r.panic.backtrace))
    for c in r.other_cpus:
        who = f"{c.task.pid} {c.task.comm}" if c.task else "?"
        section(f"CPU {c.cpu} ({who})", format_backtrace(c.backtrace) or c.error or "(no frames)")
    if r.tasks:
        body = f"{r.tasks.total} tasks\n" + _table(task_state_rows(r), ["state", "count"])
        if r.tasks.top_memory:
            body += "\n\nTop memory users:\n" + format_tasks(r.tasks.top_memory, rss=True)
        if r.tasks.blocked:
            body += "\n\nD-state tasks:\n" + format_tasks([b.task for b in r.tasks.blocked])
        for b in r.tasks.blocked:
            body += f"\n\nD-state {b.task.pid} {b.task.comm}:\n" + format_backtrace(b.backtrace)
        section("Tasks", body)
    section(log_title(r), format_dmesg(r.log_tail))
    if r.modules:
        section("Modules", format_modules(r.modules))
    if r.memory:
        section("Memory", _table(memory_rows(r), [], "plain"))
    if r.crosscheck:
        section("Cross-check (drgn vs crash)", _table(crosscheck_rows(r), ["item", "drgn", "crash", "verdict"]))
    section("Engines", _table(engine_rows(r), ["engine", "version", "status", "time", "error"]))
    if r.warnings:
        section("Warnings", "\n".join(r.warnings))
    return "\n".join(out).rstrip() + "\n"


def render_json(r: Report) -> str:
    return json.dumps(r.to_dict(), indent=2) + "\n"


def render_markdown(r: Report) -> str:
    def table(rows, headers):
        return _table(rows, headers, "github")

    def code(text: str) -> str:
        return "```\n" + text.replace("```", "'''") + "\n```"

    out = [f"# Post-mortem: {r.signature}", "", "## System", table(system_rows(r), ["", ""]), "",
           "## Panic", table(panic_rows(r), ["", ""]), "", code(format_backtrace(r.panic.backtrace)), ""]
    for c in r.other_cpus:
        who = f"{c.task.pid} {c.task.comm}" if c.task else "?"
        out += [f"### CPU {c.cpu} ({who})", code(format_backtrace(c.backtrace) or c.error), ""]
    if r.tasks:
        out += ["## Tasks", f"{r.tasks.total} tasks", "", table(task_state_rows(r), ["state", "count"]), ""]
        if r.tasks.top_memory:
            out += ["Top memory users:", "", table([(t.pid, t.comm, t.rss_kb) for t in r.tasks.top_memory],
                                                   ["PID", "COMM", "RSS KiB"]), ""]
        for b in r.tasks.blocked:
            out += [f"D-state {b.task.pid} {b.task.comm}:", code(format_backtrace(b.backtrace)), ""]
    out += [f"## {log_title(r)}", code(format_dmesg(r.log_tail)), ""]
    if r.modules:
        out += ["## Modules", code(format_modules(r.modules)), ""]
    if r.memory:
        out += ["## Memory", table(memory_rows(r), ["", ""]), ""]
    if r.crosscheck:
        out += ["## Cross-check (drgn vs crash)", table(crosscheck_rows(r), ["item", "drgn", "crash", "verdict"]), ""]
    out += ["## Engines", table(engine_rows(r), ["engine", "version", "status", "time", "error"]), ""]
    if r.warnings:
        out += ["## Warnings", *[f"- {w}" for w in r.warnings], ""]
    return "\n".join(out)


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#1d1d1f;padding:0 1em}
h1{font-size:1.4em;border-bottom:3px solid #c0392b;padding-bottom:.3em}
h2{font-size:1.15em;margin-top:1.8em;color:#333}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f6}
pre{background:#f7f7f9;border:1px solid #e3e3e8;padding:.7em;overflow-x:auto;font-size:13px}
.reason{display:inline-block;background:#c0392b;color:#fff;border-radius:3px;padding:0 .5em}
.agree{color:#1e7e34}.disagree{color:#c0392b;font-weight:bold}.crash-limitation{color:#b26a00}
.unavailable{color:#888}details{margin:.4em 0}
"""


def render_html(r: Report) -> str:
    e = html.escape

    def table(rows, headers=None, cls_col=None) -> str:
        head = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>" if headers else ""
        body = ""
        for row in rows:
            cells = []
            for i, v in enumerate(row):
                cls = f' class="{e(str(row[cls_col]).split(" ")[0])}"' if cls_col is not None and i == cls_col else ""
                cells.append(f"<td{cls}>{e(str(v))}</td>")
            body += "<tr>" + "".join(cells) + "</tr>"
        return f"<table>{head}{body}</table>"

    def pre(text: str, id_: str = "") -> str:
        return f'<pre{f" id={chr(34)}{id_}{chr(34)}" if id_ else ""}>{e(text)}</pre>'

    parts = [f"<h1>Post-mortem: <span id=\"signature\">{e(r.signature)}</span></h1>",
             f'<p>Reason: <span class="reason" id="reason">{e(r.panic.reason)}</span> '
             f'&mdash; <span id="panic-message">{e(r.panic.message)}</span></p>',
             "<h2>Panic</h2>", table(panic_rows(r)),
             pre(format_backtrace(r.panic.backtrace), "panic-backtrace"),
             "<h2>System</h2>", table(system_rows(r))]
    if r.other_cpus:
        parts.append("<h2>Other CPUs</h2>")
        for c in r.other_cpus:
            who = f"{c.task.pid} {c.task.comm}" if c.task else "?"
            parts.append(f"<details><summary>CPU {c.cpu} ({e(who)})</summary>"
                         f"{pre(format_backtrace(c.backtrace) or c.error)}</details>")
    if r.tasks:
        parts += ["<h2>Tasks</h2>", f"<p>{r.tasks.total} tasks</p>",
                  table(task_state_rows(r), ["state", "count"])]
        if r.tasks.top_memory:
            parts += ["<p>Top memory users</p>",
                      table([(t.pid, t.comm, t.rss_kb) for t in r.tasks.top_memory], ["PID", "COMM", "RSS KiB"])]
        for b in r.tasks.blocked:
            parts.append(f"<p>D-state {b.task.pid} {e(b.task.comm)}</p>{pre(format_backtrace(b.backtrace))}")
    parts += [f"<h2>{e(log_title(r))}</h2>", pre(format_dmesg(r.log_tail), "log")]
    if r.modules:
        parts += ["<h2>Modules</h2>", pre(format_modules(r.modules))]
    if r.memory:
        parts += ["<h2>Memory</h2>", table(memory_rows(r))]
    if r.crosscheck:
        parts += ["<h2>Cross-check (drgn vs crash)</h2>",
                  table(crosscheck_rows(r), ["item", "drgn", "crash", "verdict"], cls_col=3)]
    parts += ["<h2>Engines</h2>", table(engine_rows(r), ["engine", "version", "status", "time", "error"])]
    if r.warnings:
        parts += ["<h2>Warnings</h2>", "<ul>" + "".join(f"<li>{e(w)}</li>" for w in r.warnings) + "</ul>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(r.signature)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


RENDERERS = {"text": render_text, "json": render_json, "md": render_markdown, "html": render_html}


def render(r: Report, fmt: str = "text") -> str:
    return RENDERERS[fmt](r)
