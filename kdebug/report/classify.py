"""Why the kernel died, and a title that groups dumps of the same bug (pure).

The title follows the spirit of syzkaller's report titles: a headline for the
kind of failure plus the function to blame, with no addresses, pids or CPU
numbers, so that the same bug gives the same title across reboots and KASLR
and different bugs give different titles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kdebug.model import PANIC_PREFIX, FrameRecord
from kdebug.report.guilt import MACHINERY, SCHEDULER, allocating
from kdebug.report.logtext import FRAME, RIP, plain, text
from kdebug.report.model import Splat
from kdebug.report.taxonomy import culprit_report, find_reports, reason, reason_of_message
from kdebug.report.traps import WARN

#: Headlines of the reasons no kernel report explains (a report titles itself).
_HEADLINES = {
    "sysrq": "sysrq: crash triggered",
    "null-deref": "BUG: kernel NULL pointer dereference",
    "bug": "kernel BUG",
    "warn": "WARNING",
    "hung-task": "INFO: task hung",
    "soft-lockup": "BUG: soft lockup",
    "hard-lockup": "watchdog: hard LOCKUP",
    "oom": "out of memory",
}


def panic_message(lines: Sequence[str]) -> str:
    """The last "Kernel panic - not syncing: ..." message, without the prefix."""
    for line in reversed(lines):
        i = line.find(PANIC_PREFIX)
        if i >= 0:
            return line[i + len(PANIC_PREFIX):].strip()
    # An oops that did not reach panic() (kdump on oops): the header of the
    # last report (the NULL dereference, "kernel BUG at", not the die()
    # header that follows and belongs to it).
    reports = find_reports(lines)
    return reports[-1].header if reports else ""


def classify(message: str, lines: Sequence[str]) -> str:
    """One of kdebug.report.model.REASONS: the reason of the kernel report
    that explains the crash (kdebug.report.taxonomy), so the reason and the
    title tell one story; else what the panic message names."""
    if "sysrq triggered crash" in message or "sysrq: Trigger a crash" in "\n".join(lines)[-4000:]:
        return "sysrq"
    report = culprit_report(lines)
    if report is not None:
        return reason(report.kind)
    named = reason_of_message(message)
    if named is not None:
        return named
    if "NMI" in message:
        return "nmi"
    if "Fatal exception" in message:
        return "oops"
    return "other"


def oops_block(lines: Sequence[str]) -> list[str]:
    """The log's lines from the last report's header on (where the failure
    is told); the whole log when it holds no report."""
    reports = find_reports(lines)
    return list(lines[reports[-1].line:]) if reports else list(lines)


def culprit(reason: str, lines: Sequence[str], frames: Sequence[FrameRecord]) -> str:
    """The function to blame: the faulting RIP for oops-like failures, else the
    first frame of the panicking backtrace that is not panic machinery."""
    block = [text(line) for line in oops_block(lines)]
    if reason in ("null-deref", "bug", "warn", "oops", "soft-lockup", "hard-lockup"):
        for t in block:
            m = RIP.match(t)
            if m:
                return plain(m.group("func"))
        for t in block:
            w = WARN.search(t)
            if w:
                return plain(w.group("func"))
    if reason == "hung-task":
        for t in block:
            m = FRAME.match(t)
            if m and plain(m.group("func")) not in SCHEDULER:
                return plain(m.group("func"))
    for f in frames:
        name = plain(f.function)
        if reason == "oom" and allocating(name):
            continue  # the allocator and the fault path: blame who asked for memory
        if name and name not in MACHINERY:
            return name
    return "unknown"


_ADDR = re.compile(r"\b(?:0x)?[0-9a-f]{8,}\b|\b0x[0-9a-f]+\b")
_NUMBERED = re.compile(r"(?i)\b(cpu|pid|task|reason|exitcode|code)([ #:=]*)\d+")


def normalize(message: str) -> str:
    """A message without the parts that change from one boot to the next."""
    s = _ADDR.sub("ADDR", message)
    s = _NUMBERED.sub(lambda m: f"{m.group(1)}{m.group(2)}N", s)
    return re.sub(r"\s+", " ", s).strip().rstrip(".")


def signature(reason: str, message: str, lines: Sequence[str], frames: Sequence[FrameRecord],
              splat: Splat | None = None) -> str:
    """The kernel's own report, named by kdebug.report.taxonomy (``splat``,
    found in ``lines`` when not given); else a headline for the panic reason
    and the culprit (a sysrq crash, an OOM panic, an NMI)."""
    splat = splat or culprit_report(lines)
    if splat is not None:
        return splat.title if splat.guilty else f"{splat.headline} in {culprit(reason, lines, frames)}"
    headline = _HEADLINES.get(reason) or f"panic: {normalize(message) or 'unknown'}"
    return f"{headline} in {culprit(reason, lines, frames)}"


#: Every snapshot's title starts so; a crash's starts with a _HEADLINES entry or "panic:".
SNAPSHOT = "snapshot"


def snapshot_signature(blocked: Sequence[Sequence[FrameRecord]]) -> str:
    """The title of a dump without a panic: where its D-state tasks wait (the
    first frame of each that is not the scheduler's, the most common one),
    so snapshots of the same hang group together and never with a crash."""
    where: dict[str, int] = {}
    for frames in blocked:
        name = next((plain(f.function) for f in frames
                     if f.function and plain(f.function) not in SCHEDULER), "")
        if name:
            where[name] = where.get(name, 0) + 1
    if where:
        top = max(sorted(where), key=lambda n: where[n])
        return f"{SNAPSHOT}: tasks blocked in {top}"
    if blocked:
        return f"{SNAPSHOT}: tasks blocked"
    return f"{SNAPSHOT}: no blocked tasks"
