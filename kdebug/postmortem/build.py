"""Build a Report from a dump in three steps, each handing on records:
collect (drgn, in this process: kdebug.postmortem.collect) while crash runs
beside it, crash (its run and the cross-check against drgn), assemble."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kdebug.analysis.panic import snapshot_evidence
from kdebug.crash.crosscheck import cross_check
from kdebug.crash.runner import CrashProcess, CrashRun, have_crash, run_crash
from kdebug.postmortem.collect import DrgnRead, collect
from kdebug.postmortem.tier0 import postmortem_nodebug
from kdebug.report.classify import oops_block, signature, snapshot_signature
from kdebug.report.model import CrossCheck, DumpCheck, DumpGap, EngineRun, PanicInfo, Report, SnapshotInfo
from kdebug.vmcore.debuginfod import CacheError
from kdebug.vmcore.filter import explain_missing
from kdebug.vmcore.locate import Dump, open_dump, recorded_start
from kdebug.vmcore.search import DebugInfoMissing

LOG_TAIL = 60


@dataclass
class CrashOpinion:
    """What crash added: its run, its warnings, and the cross-check table."""

    engine: EngineRun
    warnings: list[str]
    crosscheck: list[CrossCheck]


def build_report(dump: Dump, *, crash: bool = True, crash_timeout: float = 120.0,
                 progress: Callable[[str], None] | None = None,
                 on_partial: Callable[[Report], None] | None = None,
                 crash_started: CrashProcess | None = None) -> Report:
    """``on_partial`` gets the drgn-only report while crash is still running;
    ``crash_started``: a crash process already running on this dump
    (crash-loop starts it as soon as the dump is whole); any other is ended."""
    say = progress or (lambda _msg: None)
    proc = _crash_process(dump, crash, crash_timeout, crash_started)
    try:
        read = collect(dump, say=say, pid_layout=crash)
    except BaseException:
        if proc is not None:
            proc.cancel()
        raise
    if on_partial is not None:
        on_partial(assemble(dump, read))
    opinion = crash_opinion(dump, read, proc, crash_timeout, say) if crash else None
    return assemble(dump, read, opinion)


def _crash_process(dump: Dump, crash: bool, timeout: float, started: CrashProcess | None) -> CrashProcess | None:
    """crash on this dump, started now (it runs while drgn reads), or the one
    already running on it; None without crash."""
    if started is not None:
        if crash and started.serves(dump.vmlinux, dump.path):
            return started
        started.cancel()
    if crash and have_crash():  # any crash on the host: CrashProcess picks the one for this kernel
        return CrashProcess(dump.vmlinux, dump.path, "report", timeout)
    return None


def crash_opinion(dump: Dump, read: DrgnRead, proc: CrashProcess | None, timeout: float,
                  say: Callable[[str], None]) -> CrashOpinion:
    """Wait for crash, and hold what it read against what drgn read."""
    say("crash: waiting")
    if proc is None:
        run = CrashRun(False, 0.0, error="crash is not installed (apt-get install crash)")
    else:
        run = run_crash(dump.vmlinux, dump.path, timeout=timeout, started=proc)
    engine = EngineRun("crash", run.ok, round(run.seconds, 3), run.error, run.version,
                       unsupported=run.unsupported)
    warnings = [w if w.startswith("crash") else f"crash: {w}" for w in (run.error, run.extension_error) if w]
    table = cross_check(read.system, read.panic, read.tasks, [m.name for m in read.modules], run,
                        tasks_complete=read.task_gap is None,
                        log=read.log if read.log_source == "vmcore" else None,
                        oops_lines=oops_block(read.lines), pid_flexible=read.pid_flexible)
    return CrashOpinion(engine, warnings, table)


def assemble(dump: Dump, read: DrgnRead, opinion: CrashOpinion | None = None) -> Report:
    """The report of what drgn read (and crash, once it has answered)."""
    check = dump_check(dump, read.gaps, len(read.tasks), read.task_gap is None, read.panic, len(read.log))
    if read.crashed:
        kind, snap = "panic", None
        sig = signature(read.panic.reason, read.panic.message, read.lines, read.panic.backtrace, read.splat)
    else:
        kind = "snapshot"
        snap = SnapshotInfo(taken=read.system.crash_time, uptime_s=read.system.uptime_s,
                            evidence=snapshot_evidence())
        sig = snapshot_signature([b.backtrace for b in read.summary.blocked] if read.summary else [])
    # how the vmlinux was paired, when it is not by build-id (a dump with no BUILD-ID)
    engines, warnings = [read.engine], [*(f"vmlinux: {n}" for n in dump.notes), *read.warnings]
    if opinion is not None:
        engines.append(opinion.engine)
        warnings += opinion.warnings
    return Report(signature=sig, system=read.system, panic=read.panic, other_cpus=read.other_cpus,
                  tasks=read.summary, log_tail=read.log[-LOG_TAIL:], modules=read.modules, memory=read.memory,
                  log_source=read.log_source, kind=kind, snapshot=snap, dump=check, splat=read.splat,
                  tainting_modules=read.tainting, crosscheck=opinion.crosscheck if opinion else [],
                  engines=engines, warnings=warnings, start=recorded_start(dump.site))


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


def postmortem(path, *, vmlinux=None, tree=None, crash: bool = True, crash_timeout: float = 120.0,
               progress=None, on_partial=None, module_dirs=(), crash_started=None,
               debuginfo: bool = True, fetch_progress=None) -> Report:
    """vmcore path -> Report (KdebugError for anything a user can fix).
    ``module_dirs``: directories of out-of-tree modules' files (paired by build-id).
    Without debug info (none found, none given, or ``debuginfo`` False) the
    report is tier 0, from the dump alone (kdebug.postmortem.tier0)."""
    if not debuginfo:
        return postmortem_nodebug(path, progress=progress)
    try:
        dump = open_dump(path, vmlinux=vmlinux, tree=tree, module_dirs=tuple(module_dirs),
                         fetch_progress=fetch_progress)  # debuginfod downloads, drawn by the CLI
    except DebugInfoMissing as e:  # nowhere to be had: the report from the dump alone
        return postmortem_nodebug(path, missing=e, progress=progress)
    except CacheError as e:  # a server has it, but kdebug's cache cannot take it
        return postmortem_nodebug(path, missing=e, cache=e, progress=progress)
    return build_report(dump, crash=crash, crash_timeout=crash_timeout, progress=progress,
                        on_partial=on_partial, crash_started=crash_started)
