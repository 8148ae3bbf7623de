"""Build a Report from a dump (over the engines: drgn in this process while crash runs beside
it), then the cross-check and the signature."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable

from kdebug.crash.crosscheck import cross_check
from kdebug.report.classify import oops_block, signature, snapshot_signature
from kdebug.report.model import DumpCheck, DumpGap, EngineRun, PanicInfo, Report, SnapshotInfo
from kdebug.vmcore.filter import explain_missing
from kdebug.vmcore.locate import Dump

LOG_TAIL = 60


def build_report(dump: Dump, *, crash: bool = True, crash_timeout: float = 120.0,
                 progress: Callable[[str], None] | None = None,
                 on_partial: Callable[[Report], None] | None = None, crash_started=None) -> Report:
    """``on_partial`` gets the drgn-only report while crash is still running;
    ``crash_started``: a kdebug.crash.runner.CrashProcess already running on this
    dump (crash-loop starts it as soon as the dump is whole); any other is ended."""
    from kdebug.analysis.features import pid_numbers_flexible
    from kdebug.analysis.health import gap, walk_tasks
    from kdebug.analysis.log import collect_log, log_lines
    from kdebug.analysis.modules import collect_modules, collect_tainting_modules
    from kdebug.analysis.panic import (
        collect_other_cpus,
        collect_panic,
        collect_splat,
        crash_evidence,
        no_panic,
        snapshot_evidence,
    )
    from kdebug.analysis.program import COLLECTOR_ERRORS, DRGN_VERSION, FaultError, open_program
    from kdebug.analysis.system import collect_memory, collect_system
    from kdebug.analysis.tasks import summarize_tasks
    from kdebug.crash.runner import CrashProcess, CrashRun, run_crash

    say = progress or (lambda _msg: None)
    proc = None
    if crash_started is not None:
        if crash and crash_started.serves(dump.vmlinux, dump.path):
            proc = crash_started
        else:
            crash_started.cancel()
    if proc is None and crash and shutil.which("crash"):
        proc = CrashProcess(dump.vmlinux, dump.path, "report", crash_timeout)
    t0 = time.monotonic()
    warnings: list[str] = []
    gaps: list[DumpGap] = []

    try:
        say("drgn: loading debug info")
        prog, load_warnings = open_program(dump)
        warnings += load_warnings

        def guard(what: str, fn, default):
            """One collector failing costs its section, not the report; a read
            outside the dump is a gap in it, which the report names."""
            try:
                return fn()
            except FaultError as e:
                gaps.append(gap(prog, what, e))
                warnings.append(f"drgn: {what}: {e}")
                return default
            except COLLECTOR_ERRORS as e:
                warnings.append(f"drgn: {what}: {type(e).__name__}: {e}")
                return default

        say("drgn: collecting")
        log = guard("log", lambda: collect_log(prog), [])
        log, log_source = _saved_log(dump, log, warnings)
        lines = log_lines(log)
        crashed = crash_evidence(prog, dump.info.vmcoreinfo)
        splat = None
        if crashed:
            panic, panic_gaps = collect_panic(prog, lines)
            gaps += panic_gaps
            splat = guard("kernel report", lambda: collect_splat(prog, lines), None)
        else:
            panic = no_panic()
        system = collect_system(prog, dump)
        tasks, task_gap = walk_tasks(prog)
        if task_gap is not None:
            gaps.append(task_gap)
            warnings.append(f"drgn: tasks: the walk stopped after {len(tasks)} tasks: {task_gap.error}")
        summary = guard("task summary", lambda: summarize_tasks(prog, tasks), None)
        if summary is not None:
            summary.complete = task_gap is None
        other = guard("other CPUs", lambda: collect_other_cpus(prog, panic.cpu), [])
        modules = guard("modules", lambda: collect_modules(prog), [])
        tainting = guard("tainting modules", lambda: collect_tainting_modules(prog, modules), [])
        memory = guard("memory", lambda: collect_memory(prog), None)
    except BaseException:
        if proc is not None:
            proc.cancel()
        raise
    drgn_secs = time.monotonic() - t0
    engines = [EngineRun("drgn", True, round(drgn_secs, 3), version=DRGN_VERSION)]
    check = dump_check(dump, gaps, len(tasks), task_gap is None, panic, len(log))
    if crashed:
        kind, snap = "panic", None
        sig = signature(panic.reason, panic.message, lines, panic.backtrace, splat)
    else:
        kind = "snapshot"
        snap = SnapshotInfo(taken=system.crash_time, uptime_s=system.uptime_s, evidence=snapshot_evidence())
        sig = snapshot_signature([b.backtrace for b in summary.blocked] if summary else [])

    def report(**kw) -> Report:
        return Report(signature=sig, system=system, panic=panic, other_cpus=other, tasks=summary,
                      log_tail=log[-LOG_TAIL:], modules=modules, memory=memory, log_source=log_source,
                      kind=kind, snapshot=snap, dump=check, splat=splat, tainting_modules=tainting, **kw)

    if on_partial is not None:
        on_partial(report(engines=list(engines), warnings=list(warnings)))
    crosscheck = []
    if crash:
        say("crash: waiting")
        if proc is None:
            run = CrashRun(False, 0.0, error="crash is not installed (apt-get install crash)")
        else:
            run = run_crash(dump.vmlinux, dump.path, timeout=crash_timeout, started=proc)
        engines.append(EngineRun("crash", run.ok, round(run.seconds, 3), run.error, run.version,
                                 unsupported=run.unsupported))
        warnings += [w if w.startswith("crash") else f"crash: {w}" for w in (run.error, run.extension_error) if w]
        crosscheck = cross_check(system, panic, tasks, [m.name for m in modules], run,
                                 tasks_complete=task_gap is None, log=log if log_source == "vmcore" else None,
                                 oops_lines=oops_block(lines).splitlines(),
                                 pid_flexible=guard("struct pid", lambda: pid_numbers_flexible(prog), None))
    return report(crosscheck=crosscheck, engines=engines, warnings=warnings)


def dump_check(dump: Dump, gaps: list[DumpGap], tasks: int, tasks_complete: bool, panic: PanicInfo,
               log_records: int) -> DumpCheck:
    """What the report could read of the dump; the cause and fix of any gap."""
    info = dump.info
    cause = fix = ""
    if gaps:
        cause, fix = explain_missing(info.format, info.dump_level, info.vmcoreinfo, [g.page for g in gaps])
    return DumpCheck(complete=not gaps, tasks=tasks, tasks_complete=tasks_complete,
                     panic_task=f"{panic.task.pid} {panic.task.comm}" if panic.task else None,
                     log_records=log_records, gaps=gaps, cause=cause, fix=fix, dump_level=info.dump_level)


def _saved_log(dump: Dump, log: list, warnings: list[str]) -> tuple[list, str]:
    """The dump's own log; when it is unreadable, the log its writer saved
    beside it (kdump-tools' dmesg.<stamp>, RHEL's vmcore-dmesg.txt)."""
    from kdebug.errors import VmcoreError
    from kdebug.vmcore.layouts import read_saved_dmesg

    if dump.site is not None and dump.site.incomplete:
        warnings.append(dump.site.incomplete)
    saved = dump.saved_dmesg
    if log or saved is None:
        return log, "vmcore"
    try:
        records = read_saved_dmesg(saved)
    except VmcoreError as e:
        warnings.append(f"log: the dump's own log is unreadable, and so is the one saved beside it: {e}")
        return log, "vmcore"
    warnings.append(f"log: the dump's own log is unreadable; the log shown is {saved}, saved beside the dump")
    return records, str(saved)


def postmortem(path, *, vmlinux=None, tree=None, crash: bool = True, crash_timeout: float = 120.0,
               progress=None, on_partial=None, module_dirs=(), crash_started=None) -> Report:
    """vmcore path -> Report (KdebugError for anything a user can fix).
    ``module_dirs``: directories of out-of-tree modules' files (paired by build-id)."""
    from kdebug.vmcore.locate import open_dump

    dump = open_dump(path, vmlinux=vmlinux, tree=tree, module_dirs=tuple(module_dirs))
    return build_report(dump, crash=crash, crash_timeout=crash_timeout, progress=progress,
                        on_partial=on_partial, crash_started=crash_started)
