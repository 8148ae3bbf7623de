"""Report -> text (tabulate), JSON, Markdown, self-contained HTML (pure).

Tables of tasks, frames, modules and log lines come from kdebug/format.py, so
they read the same here as in gdb's kd-* commands.
"""

from __future__ import annotations

import html
import json

from kdebug.format import ascii_table, format_backtrace, format_dmesg, format_modules, format_tasks
from kdebug.report.model import CpuBacktrace, DumpGap, Report, Splat

FORMATS = ("text", "json", "md", "html")


def _table(rows, headers, fmt: str = "simple") -> str:
    fast = ascii_table(rows, headers, fmt)
    if fast is not None:
        return fast
    from tabulate import tabulate  # third-party, and 0.1-0.3 s to import: only for what ascii_table cannot

    return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)


def _kb(kb: int | None) -> str:
    if kb is None:
        return "-"
    return f"{kb / 1024:.1f} MiB" if kb >= 1024 else f"{kb} KiB"


def system_rows(r: Report) -> list[tuple[str, str]]:
    s = r.system
    return [("release", s.release), ("version", s.version), ("build-id", s.build_id or "-"),
            ("architecture", s.arch), ("hostname", s.hostname), ("CPUs", str(s.cpus)),
            ("memory", _kb(s.memory_kb) if s.memory_kb else "-"),
            ("uptime", f"{s.uptime_s:.1f} s" if s.uptime_s is not None else "-"),
            ("taken" if r.kind == "snapshot" else "crash time", s.crash_time or "-"),
            ("taint", s.taint or "not tainted"),
            ("command line", s.cmdline), ("KASLR offset", f"{s.kaslr_offset:#x}" if s.kaslr_offset else "-"),
            ("vmcore", f"{s.vmcore} ({s.vmcore_format})"),
            ("vmlinux", s.vmlinux or ("none: " + r.nodebug.key if r.nodebug else "-")),
            *([("guest start", r.start)] if r.start else [])]


def panic_rows(r: Report) -> list[tuple[str, str]]:
    p = r.panic
    task = f"{p.task.pid} {p.task.comm}" if p.task else "-"
    rows = [("message", p.message or "-"), ("reason", p.reason), ("CPU", "-" if p.cpu is None else str(p.cpu))]
    if r.nodebug is None:
        return [*rows, ("task", task)]
    n = r.nodebug
    pc = "-"
    if n.pc is not None:
        pc = f"{n.pc.pc:#x} " + (f"{n.pc.function}+{n.pc.offset:#x}/{n.pc.size:#x} (kallsyms)" if n.pc.function
                                 else "(no kallsyms symbol: a module's text)")
    return [*rows, ("task", f"{n.task} (the log's CPU/PID/Comm line)" if n.task else "-"),
            ("saved RIP", pc), ("stack", n.stack)]


def tier_notice(r: Report) -> str:
    """The one line at the top of a tier-0 report: what it lacks and how to
    get it ("" for a report with debug info)."""
    if r.nodebug is None:
        return ""
    return f"{r.nodebug.lacks}. Get them: {r.nodebug.fix}."


#: A splat's stacks in the order a reader wants them, with their titles.
STACK_TITLES = (("access", "Access"), ("call", "Call trace"), ("alloc", "Allocated"), ("free", "Freed"))


def splat_rows(s: Splat) -> list[tuple[str, str]]:
    rows = [("title", s.title), ("detector", s.kind), ("bug", s.bug_type), ("guilty", s.guilty or "-"),
            ("header", s.header)]
    if s.detail:
        rows.append(("detail", s.detail))
    if s.access is not None:
        a = s.access
        what = a.op + (f" of size {a.size}" if a.size is not None else "")
        what += (f" at {a.address:#x}" if a.address is not None else "") + (f" by {a.task}" if a.task else "")
        rows.append(("access", what))
    if s.pid is not None:
        rows.append(("pid", str(s.pid)))
    return rows


def splat_stacks(s: Splat) -> list[tuple[str, str]]:
    """(title, frames as text) of each stack the report printed."""
    return [(title, format_backtrace(s.stacks[key])) for key, title in STACK_TITLES if s.stacks.get(key)]


#: What a module's taint letter says (Documentation/admin-guide/tainted-kernels.rst).
TAINT_MEANINGS = {"P": "proprietary", "F": "force-loaded", "C": "staging", "O": "out-of-tree", "E": "unsigned",
                  "K": "live patch", "X": "auxiliary", "T": "randstruct", "N": "test"}
TAINTING_HEADERS = ["module", "taint", "build-id", "debug info"]


def tainting_rows(r: Report) -> list[tuple[str, str, str, str]]:
    """One row per tainting module: what taints it, and where its frames'
    files and lines come from (or that they are missing)."""
    return [(m.name, f"{m.taints} ({', '.join(TAINT_MEANINGS.get(c, c) for c in m.taints)})",
             m.build_id or "-", m.debug_file or "none: its frames have no file:line")
            for m in r.tainting_modules]


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
    return [(e.name, e.version or "-", "ok" if e.ok else "cannot read this kernel" if e.unsupported else "failed",
             f"{e.seconds:.1f} s", e.error or "") for e in r.engines]


def log_title(r: Report) -> str:
    """The log section's title says where the log came from when it is not the dump."""
    if r.log_source == "vmcore":
        return "Log (tail)"
    return f"Log (tail) from {r.log_source}, saved beside the dump (its own log is unreadable)"


def dump_notice(r: Report) -> str:
    """The one line at the top of a report on a dump that lacks kernel data
    ("" when the dump held everything the report read)."""
    d = r.dump
    if d is None or d.complete:
        return ""
    return f"INCOMPLETE DUMP: {d.cause}. Fix: {d.fix}."


def _gap(r: Report, section: str) -> DumpGap | None:
    return next((g for g in r.dump.gaps if g.section == section), None) if r.dump else None


def _gap_note(r: Report, section: str) -> str:
    g = _gap(r, section)
    return f"(incomplete: {g.error}{f' at {g.address:#x}' if g.address is not None else ''})" if g else ""


def task_count(r: Report) -> str:
    """"N tasks", or the count a gap cut short, said to be one."""
    t = r.tasks
    if t is None:
        return "-"
    if t.complete:
        return f"{t.total} tasks"
    return f"{t.total} tasks read before the task list broke off {_gap_note(r, 'tasks')}: not the real count"


def snapshot_rows(r: Report) -> list[tuple[str, str]]:
    s = r.snapshot
    if s is None:
        return []
    return [("taken", s.taken or "-"), ("uptime", f"{s.uptime_s:.1f} s" if s.uptime_s is not None else "-"),
            ("CPUs", str(len(r.other_cpus))), ("blocked (D) tasks", str(len(r.tasks.blocked)) if r.tasks else "-"),
            ("why a snapshot", s.evidence)]


def cpu_title(r: Report, c: CpuBacktrace) -> str:
    who = f"{c.task.pid} {c.task.comm}" if c.task else "?"
    return f"CPU {c.cpu} running {who}" if r.kind == "snapshot" else f"CPU {c.cpu} ({who})"


#: The sections of a text report, in order; crash-loop prints CRASH_SECTIONS
#: of the full report after the drgn report it showed first.
CRASH_SECTIONS = ("crosscheck", "engines", "warnings")


def text_sections(r: Report) -> list[tuple[str, str, str]]:
    """(key, title, body) of each section of the text report."""
    out: list[tuple[str, str, str]] = []

    def section(key: str, title: str, body: str) -> None:
        out.append((key, title, body))

    section("system", "System", _table(system_rows(r), [], "plain"))
    if r.kind == "snapshot":
        section("snapshot", "Snapshot (no panic)", _table(snapshot_rows(r), [], "plain"))
    else:
        note = _gap_note(r, "panic task")
        section("panic", "Panic", _table(panic_rows(r), [], "plain") + (f"\n{note}" if note else "")
                + "\n\n" + format_backtrace(r.panic.backtrace))
    if r.splat is not None:
        body = _table(splat_rows(r.splat), [], "plain")
        for title, frames in splat_stacks(r.splat):
            body += f"\n\n{title}:\n{frames}"
        section("splat", f"Kernel report ({r.splat.kind})", body)
    for c in r.other_cpus:
        section("cpus", cpu_title(r, c), format_backtrace(c.backtrace) or c.error or "(no frames)")
    if r.tasks:
        body = task_count(r) + "\n" + _table(task_state_rows(r), ["state", "count"])
        if r.tasks.top_memory:
            body += "\n\nTop memory users:\n" + format_tasks(r.tasks.top_memory, rss=True)
        if r.tasks.blocked:
            body += "\n\nD-state tasks:\n" + format_tasks([b.task for b in r.tasks.blocked])
        for b in r.tasks.blocked:
            body += f"\n\nD-state {b.task.pid} {b.task.comm}:\n" + format_backtrace(b.backtrace)
        section("tasks", "Tasks", body)
    section("log", log_title(r), format_dmesg(r.log_tail) or _gap_note(r, "log"))
    if r.modules or _gap(r, "modules"):
        section("modules", "Modules", format_modules(r.modules) or _gap_note(r, "modules"))
    if r.tainting_modules:
        section("tainting", "Tainting modules", _table(tainting_rows(r), TAINTING_HEADERS))
    if r.memory:
        section("memory", "Memory", _table(memory_rows(r), [], "plain"))
    if r.crosscheck:
        section("crosscheck", "Cross-check (drgn vs crash)",
                _table(crosscheck_rows(r), ["item", "drgn", "crash", "verdict"]))
    section("engines", "Engines", _table(engine_rows(r), ["engine", "version", "status", "time", "error"]))
    if r.warnings:
        section("warnings", "Warnings", "\n".join(r.warnings))
    return out


def render_text(r: Report, sections: tuple[str, ...] | None = None) -> str:
    """The whole report, or only ``sections`` (keys of :func:`text_sections`)
    without the title."""
    out = [] if sections else [f"kdebug post-mortem: {r.signature}",
                               *filter(None, [tier_notice(r), dump_notice(r)]), ""]
    for key, title, body in text_sections(r):
        if sections is None or key in sections:
            out.extend([f"== {title} ==", body, ""])
    return "\n".join(out).rstrip() + "\n"


def render_json(r: Report) -> str:
    return json.dumps(r.to_dict(), indent=2) + "\n"


def render_markdown(r: Report) -> str:
    def table(rows, headers):
        return _table(rows, headers, "github")

    def code(text: str) -> str:
        return "```\n" + text.replace("```", "'''") + "\n```"

    out = [f"# Post-mortem: {r.signature}", ""]
    if tier_notice(r):
        out += [f"**{tier_notice(r)}**", ""]
    if dump_notice(r):
        out += [f"**{dump_notice(r)}**", ""]
    out += ["## System", table(system_rows(r), ["", ""]), ""]
    if r.kind == "snapshot":
        out += ["## Snapshot (no panic)", table(snapshot_rows(r), ["", ""]), ""]
    else:
        out += ["## Panic", table(panic_rows(r), ["", ""]), "", *filter(None, [_gap_note(r, "panic task")]),
                code(format_backtrace(r.panic.backtrace)), ""]
    if r.splat is not None:
        out += [f"## Kernel report ({r.splat.kind})", table(splat_rows(r.splat), ["", ""]), ""]
        for title, frames in splat_stacks(r.splat):
            out += [f"{title}:", code(frames), ""]
    for c in r.other_cpus:
        out += [f"### {cpu_title(r, c)}", code(format_backtrace(c.backtrace) or c.error), ""]
    if r.tasks:
        out += ["## Tasks", task_count(r), "", table(task_state_rows(r), ["state", "count"]), ""]
        if r.tasks.top_memory:
            out += ["Top memory users:", "", table([(t.pid, t.comm, t.rss_kb) for t in r.tasks.top_memory],
                                                   ["PID", "COMM", "RSS KiB"]), ""]
        for b in r.tasks.blocked:
            out += [f"D-state {b.task.pid} {b.task.comm}:", code(format_backtrace(b.backtrace)), ""]
    out += [f"## {log_title(r)}", code(format_dmesg(r.log_tail) or _gap_note(r, "log")), ""]
    if r.modules or _gap(r, "modules"):
        out += ["## Modules", code(format_modules(r.modules) or _gap_note(r, "modules")), ""]
    if r.tainting_modules:
        out += ["## Tainting modules", table(tainting_rows(r), TAINTING_HEADERS), ""]
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
.incomplete{background:#fdecea;border-left:4px solid #c0392b;padding:.4em .7em;font-weight:bold}
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

    parts = [f"<h1>Post-mortem: <span id=\"signature\">{e(r.signature)}</span></h1>"]
    if tier_notice(r):
        parts.append(f'<p class="incomplete" id="tier-notice">{e(tier_notice(r))}</p>')
    if dump_notice(r):
        parts.append(f'<p class="incomplete" id="dump-notice">{e(dump_notice(r))}</p>')
    if r.kind == "snapshot":
        parts += ['<p>Kind: <span class="reason" id="kind">snapshot</span></p>',
                  "<h2>Snapshot (no panic)</h2>", table(snapshot_rows(r))]
    else:
        parts += [f'<p>Reason: <span class="reason" id="reason">{e(r.panic.reason)}</span> '
                  f'&mdash; <span id="panic-message">{e(r.panic.message)}</span></p>',
                  "<h2>Panic</h2>", table(panic_rows(r)), *filter(None, [e(_gap_note(r, "panic task"))]),
                  pre(format_backtrace(r.panic.backtrace), "panic-backtrace")]
    if r.splat is not None:
        parts += [f'<h2 id="splat">Kernel report ({e(r.splat.kind)})</h2>', table(splat_rows(r.splat))]
        for title, frames in splat_stacks(r.splat):
            parts += [f"<p>{e(title)}</p>", pre(frames, f"splat-{title.split()[0].lower()}")]
    parts += ["<h2>System</h2>", table(system_rows(r))]
    if r.other_cpus:
        parts.append("<h2>CPUs</h2>" if r.kind == "snapshot" else "<h2>Other CPUs</h2>")
        for c in r.other_cpus:
            parts.append(f"<details><summary>{e(cpu_title(r, c))}</summary>"
                         f"{pre(format_backtrace(c.backtrace) or c.error)}</details>")
    if r.tasks:
        parts += ["<h2>Tasks</h2>", f'<p id="task-count">{e(task_count(r))}</p>',
                  table(task_state_rows(r), ["state", "count"])]
        if r.tasks.top_memory:
            parts += ["<p>Top memory users</p>",
                      table([(t.pid, t.comm, t.rss_kb) for t in r.tasks.top_memory], ["PID", "COMM", "RSS KiB"])]
        for b in r.tasks.blocked:
            parts.append(f"<p>D-state {b.task.pid} {e(b.task.comm)}</p>{pre(format_backtrace(b.backtrace))}")
    parts += [f"<h2>{e(log_title(r))}</h2>", pre(format_dmesg(r.log_tail) or _gap_note(r, "log"), "log")]
    if r.modules or _gap(r, "modules"):
        parts += ["<h2>Modules</h2>", pre(format_modules(r.modules) or _gap_note(r, "modules"))]
    if r.tainting_modules:
        parts += ['<h2 id="tainting">Tainting modules</h2>', table(tainting_rows(r), TAINTING_HEADERS)]
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
