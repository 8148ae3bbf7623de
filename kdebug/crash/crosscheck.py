"""drgn against crash, item by item (pure). drgn is the primary engine; crash
is the independent second opinion. The two task lists come from different
walks: drgn's ``for_each_task`` follows the PID IDR (``init_pid_ns.idr``,
each ``struct pid``'s PIDTYPE_PID task), kdebug's crash extension (kdps)
follows ``init_task.tasks`` (the group leaders) and each group's thread
list. crash's own task table also comes from the PID IDR (which crash calls
its PID hash), but through its own reading of ``struct pid``, which misses
tasks where crash lacks a fix (see kdebug.crash.support); it is shown only
then. Every note says what was seen on this dump."""

from __future__ import annotations

from kdebug.crash.parse import (
    CrashBacktrace,
    call_chain,
    parse_bt,
    parse_kdps,
    parse_log,
    parse_mod,
    parse_sys,
    split_warnings,
    sys_cpus,
)
from kdebug.crash.record import CrashRun
from kdebug.crash.support import PID_FLEX_ARRAY, fixed_by
from kdebug.model import PANIC_PREFIX, FrameRecord, PrintkRecord, TaskRecord
from kdebug.report.classify import MACHINERY
from kdebug.report.model import CrossCheck, PanicInfo, SystemInfo

TOP_FRAMES = 3


def top_functions(frames: list[FrameRecord], n: int = TOP_FRAMES) -> list[str]:
    """The first ``n`` real (not inlined) functions after the panic machinery,
    without compiler suffixes: what both engines should agree on."""
    names = [f.function.split(".", 1)[0] for f in frames if not f.inline and f.function]
    # The engines start unwinding at different points inside the panic path
    # (drgn at pvpanic's notifier, crash at panic or machine_kexec): drop
    # machinery frames, and repeats (crash names an interrupted function twice).
    # crash's stack scan also shows stale frames further down; only the top counts.
    out: list[str] = []
    for name in names:
        if name in MACHINERY or (out and out[-1] == name):
            continue
        out.append(name)
    return out[:n]


def _row(item: str, drgn: object, crash: object, note: str = "", limitation: bool = False) -> CrossCheck:
    d, c = str(drgn), str(crash)
    if crash is None or c == "":
        return CrossCheck(item, d, "-", "unavailable", note)
    if d == c:
        return CrossCheck(item, d, c, "agree", note)
    return CrossCheck(item, d, c, "crash-limitation" if limitation else "disagree", note)


def _task_key(t: TaskRecord) -> tuple:
    return (t.pid, t.tgid, t.ppid, t.state, t.comm, t.address)


def task_rows(tasks: list[TaskRecord], drgn_complete: bool, outputs: dict[str, str],
              warnings: list[str], pid_flexible: bool | None) -> list[CrossCheck]:
    """Task count and task list from kdps (the task list) against drgn's
    (the PID IDR); crash's own (PID-hash) count only where it missed tasks,
    marked as crash's limitation with what was seen."""
    rows = []
    drgn_note = "" if drgn_complete else "drgn's walk stopped early: its count is a lower bound"
    walk = parse_kdps(outputs["kdps"]) if "kdps" in outputs else None
    if walk is not None:
        theirs = walk.user_visible  # the idle tasks (pid 0) are in no PID IDR: drgn's walk has none
        if not walk.complete:
            rows.append(CrossCheck("task count", str(len(tasks)), f"{len(theirs)} (walk cut short)",
                                   "unavailable", f"kdps: {walk.error}"))
        else:
            note = ("kdps (kdebug's crash extension) walks init_task.tasks, drgn the PID IDR; "
                    "idle tasks (pid 0) not counted")
            rows.append(_row("task count", len(tasks), len(theirs), "; ".join(filter(None, [note, drgn_note]))))
            mine, other = {_task_key(t) for t in tasks}, {_task_key(t) for t in theirs}
            diff = sorted(mine ^ other)
            rows.append(_row("tasks (pid tgid ppid state comm address)", f"{len(mine)} tasks",
                             f"{len(other)} tasks" if not diff else f"{len(other)} tasks (differ)",
                             "first differences: " + ", ".join(f"{k[0]} {k[4]}" for k in diff[:5]) if diff else ""))
    sys_ = parse_sys(outputs.get("sys", ""))
    try:
        crash_own = int(sys_.get("TASKS", ""))
    except ValueError:
        return rows
    # crash's own table (sys TASKS) also holds every CPU's idle task, which
    # has no struct pid in the IDR drgn's for_each_task() walks.
    idle = sys_cpus(sys_) or 1
    listed = crash_own - idle
    if listed < len(tasks):
        seen = [f"crash's own table (from the PID hash) lists {crash_own} tasks, {idle} of them idle"]
        seen += [f"crash warned: {w.removeprefix('WARNING: ').strip()}" for w in warnings
                 if PID_FLEX_ARRAY.message in w][:1]
        if pid_flexible:
            seen.append(f"{PID_FLEX_ARRAY.change}: {fixed_by(PID_FLEX_ARRAY)}")
        rows.append(_row("crash's own task table", len(tasks), listed, "; ".join(seen), limitation=True))
    elif walk is None:  # kdps did not run: crash's own count is all there is
        rows.append(_row("task count", len(tasks), listed, "; ".join(filter(None, [
            f"crash's own table less its {idle} idle tasks (kdps did not run)", drgn_note]))))
    return rows


def log_row(log: list[PrintkRecord], text: str) -> CrossCheck:
    """Every printk record, at crash's microsecond resolution."""
    crash_log = parse_log(text)
    mine = [(r.timestamp_ns // 1000, r.text) for r in log]
    theirs = [(ns // 1000, t) for ns, t in crash_log]
    first = next((i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b), None)
    if first is None and len(mine) == len(theirs):
        return CrossCheck("log records", f"{len(mine)} records", f"{len(theirs)} records", "agree")
    at = first if first is not None else min(len(mine), len(theirs))
    return CrossCheck("log records", f"{len(mine)} records", f"{len(theirs)} records", "disagree",
                      f"first difference at record {at}")


def cross_check(system: SystemInfo, panic: PanicInfo, tasks: list[TaskRecord], module_names: list[str],
                run: CrashRun, *, tasks_complete: bool = True, log: list[PrintkRecord] | None = None,
                oops_lines: list[str] = (), pid_flexible: bool | None = None) -> list[CrossCheck]:
    """The table, or nothing when crash could not read this kernel (the
    crash engine's ``unsupported`` line says so instead). ``log`` is drgn's,
    when it came from the dump; ``pid_flexible`` whether struct pid ends in
    a flexible array on this kernel."""
    if run.unsupported:
        return []
    outputs = run.outputs
    sys_ = parse_sys(outputs.get("sys", ""))
    bts = parse_bt(outputs.get("bt", ""))
    bt: CrashBacktrace | None = bts[0] if bts else None
    rows = [_row("release", system.release, sys_.get("RELEASE"))]
    crash_msg = sys_.get("PANIC", "").removeprefix(PANIC_PREFIX) or None
    if crash_msg and crash_msg != panic.message and any(crash_msg in ln for ln in oops_lines):
        rows.append(CrossCheck("panic message", panic.message, crash_msg, "agree",
                               "the same oops: crash quotes its Oops line, kdebug the headline above it"))
    else:
        rows.append(_row("panic message", panic.message, crash_msg))
    if panic.task is not None:
        rows.append(_row("panic task", f"{panic.task.pid} {panic.task.comm}",
                         f"{bt.pid} {bt.comm}" if bt else None))
    rows.append(_row("panic CPU", panic.cpu, bt.cpu if bt else None))
    rows.append(_row("backtrace (top frames)", " < ".join(top_functions(panic.backtrace)),
                     " < ".join(top_functions(call_chain(bt))) if bt else None))
    rows += task_rows(tasks, tasks_complete, outputs, split_warnings(run.console), pid_flexible)
    rows.append(_row("CPUs", system.cpus, sys_cpus(sys_)))
    if "mod" in outputs:
        mine, theirs = set(module_names), {m.name for m in parse_mod(outputs["mod"])}
        diff = sorted(mine ^ theirs)
        rows.append(_row("modules", f"{len(mine)} modules", f"{len(theirs)} modules" if not diff else
                         f"{len(theirs)} modules (differ)", "only in one: " + ", ".join(diff) if diff else ""))
    if log is not None and "log" in outputs:
        rows.append(log_row(log, outputs["log"]))
    return rows
