"""The kernel's own bug reports in its log: one table that names them (pure).

A report is what one of the kernel's detectors prints: KASAN, KFENCE, UBSAN,
lockdep, refcount_t, list debugging, the scheduler's atomic-context checks,
the RCU stall detector, the x86 trap handlers (general protection fault,
divide error, invalid opcode, double fault, stack guard page), the page
fault oops, BUG() and WARN(), the lockup and hung-task watchdogs.

Everyone who needs to know what the kernel reported asks this table:
:data:`KINDS` says, for each kind, what a person calls it, the panic reason
a report gives (kdebug.report.model.REASONS), the ``--panic-on`` word whose
switch panics on it (kdebug.capture.panicon) and the message its panic()
carries; :data:`FORMATS` says which header line opens a report of the kind
and how it is titled. The capture's console watcher (:func:`first_header`,
:data:`ANY_HEADER`), the report's reason (kdebug.report.classify) and its
title (:func:`find_reports`, :func:`culprit_report`) all read it.

Each report gets a title in syzkaller's style ("KASAN: slab-use-after-free
Read in foo", "UBSAN: shift-out-of-bounds in foo", "possible deadlock in
foo"): the kind of bug plus the guilty function (kdebug.report.guilt). No
addresses, pids or CPU numbers, so the same bug gives the same title after
every boot. The formats are those of the kernels kdebug runs (the 6.1 and
6.12 sources, cited beside each header in its family module).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kdebug.model import PANIC_PREFIX
from kdebug.report import checks, sanitizers, traps, watchdogs
from kdebug.report.logtext import CONTEXT, text
from kdebug.report.model import Splat


@dataclass(frozen=True)
class Kind:
    """One kind of kernel report."""

    name: str  # "kasan", "null-deref": Splat.kind
    label: str  # what a person calls it ("KASAN report", "NULL pointer dereference")
    reason: str  # the panic reason a crash with this report gets (kdebug.report.model.REASONS)
    #: The --panic-on word whose switch panics the kernel on it
    #: (kdebug.capture.panicon.SWITCHES), None where no switch does.
    panic_on: str | None
    #: The message its panic() carries ("Kernel panic - not syncing: <this>"),
    #: for a log that kept the panic but lost the report.
    panics: re.Pattern | None = None
    #: The switch is that of the BUG() or WARN() that ends the report, when
    #: the kernel's configuration picks which (CHECK_DATA_CORRUPTION).
    by_next: bool = False


def _k(name: str, label: str, reason: str, panic_on: str | None, panics: str | None = None, **kw) -> Kind:
    return Kind(name, label, reason, panic_on, re.compile(panics) if panics else None, **kw)


#: Every kind, in the order a panic message is tried against them (the
#: specific sanitizers before the WARN they panic through). The switches:
#: an Oops, BUG() and every die() panic with panic_on_oops (oops_end() in
#: arch/x86/kernel/dumpstack.c); WARN(), KASAN, KFENCE, UBSAN and "scheduling
#: while atomic" with panic_on_warn (check_panic_on_warn(), whose message
#: names its caller: "KASAN: panic_on_warn set ..."); the watchdogs with
#: their own (kernel/watchdog.c, kernel/rcu/tree_stall.h, kernel/hung_task.c).
#: lockdep and __might_resched print and go on: nothing panics on them.
KINDS: dict[str, Kind] = {k.name: k for k in (
    _k("kasan", "KASAN report", "kasan", "warn", r"^KASAN: panic_on_warn|kasan\.fault=panic"),
    _k("kfence", "KFENCE report", "kfence", "warn", r"^KFENCE: panic_on_warn"),
    _k("ubsan", "UBSAN report", "ubsan", "warn", r"^UBSAN: panic_on_warn"),
    _k("lockdep", "lockdep report", "lockdep", None),
    # refcount_warn_saturate() is a WARN_ONCE(): a warning, titled as one.
    _k("refcount", "refcount_t warning", "warn", "warn"),
    # lib/list_debug.c goes through CHECK_DATA_CORRUPTION: BUG() with
    # CONFIG_BUG_ON_DATA_CORRUPTION (Debian's kernels and the sanitizer
    # tree), else WARN(); the reason is the corruption either way.
    _k("list", "list corruption", "list-corruption", "oops", by_next=True),
    _k("atomic-sleep", "sleeping in atomic context", "atomic-sleep", None),
    _k("sched-atomic", "scheduling while atomic", "atomic-sleep", "warn", r"^scheduling while atomic: panic_on_warn"),
    _k("rcu-stall", "RCU stall", "rcu-stall", "lockup", r"^RCU Stall"),
    # handle_stack_overflow() calls die("stack guard page"), then panic()s.
    _k("stack-overflow", "stack overflow", "stack-overflow", "oops", r"stack guard page was hit"),
    _k("double-fault", "double fault", "oops", "oops"),
    _k("gpf", "general protection fault", "oops", "oops"),
    _k("divide-error", "divide error", "oops", "oops"),
    _k("invalid-opcode", "invalid opcode", "oops", "oops"),
    _k("oops", "Oops", "oops", "oops"),
    _k("null-deref", "NULL pointer dereference", "null-deref", "oops"),
    _k("page-fault", "page fault oops", "oops", "oops"),
    _k("bug", "BUG()", "bug", "oops"),
    _k("warn", "WARNING", "warn", "warn", r"panic_on_warn"),
    _k("soft-lockup", "soft lockup", "soft-lockup", "lockup", r"softlockup|BUG: soft lockup"),
    _k("hard-lockup", "hard lockup", "hard-lockup", "lockup", r"(?i)hard LOCKUP"),
    _k("hung-task", "hung task", "hung-task", "hung", r"hung_task"),
    # mm/oom_kill.c: the OOM killer at work is no bug report (no title), but
    # vm.panic_on_oom would have panicked there instead.
    _k("oom-kill", "OOM kill", "oom", "oom", r"(?i)out of memory|deadlocked on memory"),
)}


@dataclass(frozen=True)
class Format:
    """A header line that opens a report, and how the report is read and titled."""

    kind: str  # a KINDS key, or "die" (the kind is read from the header: kind_of)
    header: re.Pattern  # matched anywhere in a line without its printk prefix
    #: Reads the report from its header to the next and titles it
    #: (kdebug.report.logtext.splat); None: the watcher's alone (no bug report).
    parse: Callable[[re.Match, list[str], int, int], Splat] | None
    #: Kinds of header that, within a few lines after this one, belong to
    #: the same report (the die() header after "kernel BUG at", the WARNING
    #: after "refcount_t: ...").
    absorbs: tuple[str, ...] = ()
    kind_of: Callable[[re.Match], str] | None = None

    def kind_at(self, m: re.Match) -> str:
        return self.kind_of(m) if self.kind_of is not None else self.kind


#: The kinds die() names (arch/x86/kernel/dumpstack.c __die_header).
_DIE_PARTS = ("gpf", "divide-error", "invalid-opcode", "stack-overflow", "double-fault", "oops")
#: Most specific first: a line is the first format whose header it holds.
FORMATS: tuple[Format, ...] = (
    Format("kasan", sanitizers.KASAN, sanitizers.kasan, absorbs=("null-deref", "page-fault", "gpf", "oops")),
    Format("kfence", sanitizers.KFENCE, sanitizers.kfence, absorbs=("null-deref", "page-fault", "oops")),
    Format("ubsan", sanitizers.UBSAN, sanitizers.ubsan),
    Format("lockdep", checks.LOCKDEP, checks.lockdep),
    Format("refcount", checks.REFCOUNT, checks.refcount, absorbs=("warn",)),
    Format("list", checks.LIST, checks.list_corruption, absorbs=("bug", "warn", *_DIE_PARTS)),
    Format("atomic-sleep", checks.MIGHT_SLEEP, checks.might_sleep),
    Format("sched-atomic", checks.SCHED_ATOMIC, checks.sched_atomic),
    Format("rcu-stall", watchdogs.RCU, watchdogs.rcu),
    Format("stack-overflow", traps.STACK_GUARD, traps.stack_guard, absorbs=("double-fault", *_DIE_PARTS)),
    Format("double-fault", traps.DOUBLE_FAULT, traps.double_fault, absorbs=_DIE_PARTS),
    Format("null-deref", traps.NULL, traps.null, absorbs=_DIE_PARTS),
    Format("page-fault", traps.PAGE_FAULT, traps.page_fault, absorbs=_DIE_PARTS),
    Format("bug", traps.BUG, traps.bug, absorbs=_DIE_PARTS),
    Format("warn", traps.WARN, traps.warn),
    Format("soft-lockup", watchdogs.SOFT, watchdogs.soft),
    Format("hard-lockup", watchdogs.HARD, watchdogs.hard),
    Format("hung-task", watchdogs.HUNG, watchdogs.hung),
    Format("die", traps.DIE, traps.die, kind_of=traps.die_kind),
    Format("oom-kill", re.compile(r"Out of memory: Killed process \d+"), None),
)
#: How far after its opener a header it absorbs may come (the die() header
#: follows "kernel BUG at" at once and a NULL dereference after "#PF:" lines).
_ABSORB_WINDOW = 12


def _ungrouped(pattern: str) -> str:
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


#: Any format's header, for a watcher that searches raw console output
#: (kdebug.capture.panicon); which one it was, :func:`first_header` says.
ANY_HEADER = re.compile("|".join(f"(?:{_ungrouped(f.header.pattern)})" for f in FORMATS))


def header(t: str) -> tuple[Format, re.Match, str] | None:
    """The report a line (without its printk prefix) opens: its format, the
    header's match and the kind it names; None for any other line (panic()'s
    own line repeats words of a report but opens none)."""
    if PANIC_PREFIX in t:
        return None
    for fmt in FORMATS:
        m = fmt.header.search(t)
        if m:
            return fmt, m, fmt.kind_at(m)
    return None


@dataclass(frozen=True)
class Header:
    """The first report header in a log, as a watcher sees it."""

    index: int  # of the line
    line: str  # the header line, without its printk prefix (as Splat.header)
    kind: str  # a KINDS key
    panic_on: str | None  # the --panic-on word that panics there (KINDS, or the report's end)


def first_header(lines: Sequence[str]) -> Header | None:
    """The first line that opens a report, any kind, the watcher's alone included."""
    for i, line in enumerate(lines):
        t = text(line)
        hit = header(t)
        if hit is None:
            continue
        fmt, _, kind = hit
        word = KINDS[kind].panic_on
        if KINDS[kind].by_next:
            for j in range(i + 1, min(i + 1 + _ABSORB_WINDOW, len(lines))):
                nxt = header(text(lines[j]))
                if nxt is not None and nxt[2] in fmt.absorbs:
                    word = KINDS[nxt[2]].panic_on
                    break
        return Header(i, t.strip(), kind, word)
    return None


def find_reports(lines: Sequence[str]) -> list[Splat]:
    """Every report in ``lines``, in the order the kernel printed them."""
    lines = list(lines)
    opened: list[tuple[int, Format, re.Match]] = []
    for i, line in enumerate(lines):
        hit = header(text(line))
        if hit is None or hit[0].parse is None:
            continue
        fmt, m, kind = hit
        if opened:
            j, prev, _ = opened[-1]
            if kind in prev.absorbs and i - j <= _ABSORB_WINDOW:
                continue
        opened.append((i, fmt, m))
    out = []
    for n, (i, fmt, m) in enumerate(opened):
        end = opened[n + 1][0] if n + 1 < len(opened) else len(lines)
        out.append(fmt.parse(m, lines, i, end))
    return out


def _panic_pid(lines: Sequence[str]) -> int | None:
    """The task that called panic(): the "CPU: ... PID: %d" of the stack
    panic() dumps right after its "Kernel panic - not syncing" line (it dumps
    none after an oops, or without CONFIG_DEBUG_BUGVERBOSE: None)."""
    for i in range(len(lines) - 1, -1, -1):
        if PANIC_PREFIX in lines[i]:
            for j in range(i + 1, min(i + 4, len(lines))):
                m = CONTEXT.search(text(lines[j]))
                if m:
                    return int(m.group("pid"))
            return None
    return None


def culprit_report(lines: Sequence[str]) -> Splat | None:
    """The report that explains the crash, or None when none does.

    The crash is one task's incident: a sanitizer's report, the oops it
    leads to and the scheduler's complaint after it come from the task that
    then panics, and the incident is named by its first report, as syzkaller
    names it. The task is the one panic() names, else (an oops that went
    straight to kdump, or a panic after an oops) the one the last report is
    about. Reports about other tasks (a warning at boot) are other
    incidents: a crash with no report of its own (sysrq-c, an NMI) gets none
    of them. A report that names no printing task (a hung task, reported by
    khungtaskd about another) stands for the crash when it came last."""
    reports = find_reports(lines)
    if not reports:
        return None
    last = reports[-1]
    pid = _panic_pid(lines)
    if pid is None:
        pid = last.pid
    if pid is None:
        return last
    mine = [r for r in reports if r.pid == pid]
    if mine:
        return mine[0]
    return last if last.pid is None else None


def reason(kind: str) -> str:
    """The panic reason a crash explained by a report of ``kind`` gets."""
    return KINDS[kind].reason


def reason_of_message(message: str) -> str | None:
    """The reason a panic message names (a log that lost its report), or None."""
    for k in KINDS.values():
        if k.panics is not None and k.panics.search(message):
            return k.reason
    return None
