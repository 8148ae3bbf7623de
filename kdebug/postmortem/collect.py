"""The drgn half of a report: every section read from the dump in this
process into one :class:`DrgnRead`. One collector failing costs its section,
not the report; a read outside the dump is a gap in it, which the report names."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kdebug.analysis.features import pid_numbers_flexible
from kdebug.analysis.gaps import gap
from kdebug.analysis.log import collect_log, log_lines
from kdebug.analysis.modules import collect_modules, collect_tainting_modules
from kdebug.analysis.panic import (
    collect_other_cpus,
    collect_panic,
    collect_splat,
    crash_evidence,
    no_panic,
)
from kdebug.analysis.program import COLLECTOR_ERRORS, DRGN_VERSION, FaultError, open_program, reading
from kdebug.analysis.system import collect_memory, collect_system
from kdebug.analysis.tasks import summarize_tasks, walk_tasks
from kdebug.errors import VmcoreError
from kdebug.model import ModuleRecord, PrintkRecord, TaskRecord
from kdebug.report.model import (
    CpuBacktrace,
    DumpGap,
    EngineRun,
    MemorySummary,
    PanicInfo,
    Splat,
    SystemInfo,
    TaintingModule,
    TaskSummary,
)
from kdebug.vmcore.layouts import read_saved_dmesg
from kdebug.vmcore.locate import Dump


@dataclass
class DrgnRead:
    """What drgn read of one dump: the records a report is assembled from."""

    engine: EngineRun
    log: list[PrintkRecord]
    log_source: str  # "vmcore", or the path of the log saved beside it
    lines: list[str]  # the log's text, a line per record
    crashed: bool  # False: a snapshot of a kernel that was not crashing
    panic: PanicInfo
    splat: Splat | None
    system: SystemInfo
    tasks: list[TaskRecord]
    task_gap: DumpGap | None  # what cut the task walk short
    summary: TaskSummary | None
    other_cpus: list[CpuBacktrace]
    modules: list[ModuleRecord]
    tainting: list[TaintingModule]
    memory: MemorySummary | None
    pid_flexible: bool | None  # struct pid's layout, for the cross-check's notes
    gaps: list[DumpGap] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Guard:
    """Runs one collector: a read outside the dump becomes a gap, any other
    collector error a warning; either way the section gets its default."""

    def __init__(self, prog, gaps: list[DumpGap], warnings: list[str]) -> None:
        self.prog, self.gaps, self.warnings = prog, gaps, warnings

    def __call__(self, what: str, fn: Callable, default):
        try:
            return fn()
        except FaultError as e:
            self.gaps.append(gap(self.prog, what, e))
            self.warnings.append(f"drgn: {what}: {e}")
            return default
        except COLLECTOR_ERRORS as e:
            self.warnings.append(f"drgn: {what}: {type(e).__name__}: {e}")
            return default


def collect(dump: Dump, *, say: Callable[[str], None], pid_layout: bool = False) -> DrgnRead:
    """Read every section of a report from the dump with drgn.
    ``pid_layout``: also read struct pid's layout (the crash cross-check's notes)."""
    t0 = time.monotonic()
    say("drgn: loading debug info")
    prog, warnings = open_program(dump)
    gaps: list[DumpGap] = []
    guard = _Guard(prog, gaps, warnings)
    say("drgn: collecting")
    log, log_source = _saved_log(dump, guard("log", lambda: collect_log(prog), []), warnings)
    lines = log_lines(log)
    # The sections a report cannot go without: a dump drgn cannot read them
    # from is damaged, one line (kdebug.analysis.program.reading).
    with reading(dump.path, "the panic (panic CPU, task and message)"):
        crashed, panic, splat = _panic(prog, dump, lines, guard)
    with reading(dump.path, "the system (utsname, CPUs, memory)"):
        system = collect_system(prog, dump)
    with reading(dump.path, "the task list"):
        tasks, task_gap, summary = _tasks(prog, guard)
    other = guard("other CPUs", lambda: collect_other_cpus(prog, panic.cpu), [])
    modules = guard("modules", lambda: collect_modules(prog), [])
    tainting = guard("tainting modules", lambda: collect_tainting_modules(prog, modules), [])
    memory = guard("memory", lambda: collect_memory(prog), None)
    pid_flexible = guard("struct pid", lambda: pid_numbers_flexible(prog), None) if pid_layout else None
    engine = EngineRun("drgn", True, round(time.monotonic() - t0, 3), version=DRGN_VERSION)
    return DrgnRead(engine, log, log_source, lines, crashed, panic, splat, system, tasks, task_gap, summary,
                    other, modules, tainting, memory, pid_flexible, gaps, warnings)


def _panic(prog, dump: Dump, lines: list[str], guard: _Guard) -> tuple[bool, PanicInfo, Splat | None]:
    """Whether the kernel was crashing, the panic, and the kernel's report that explains it."""
    if not crash_evidence(prog, dump.info.vmcoreinfo):
        return False, no_panic(), None
    panic, panic_gaps = collect_panic(prog, lines)
    guard.gaps.extend(panic_gaps)
    return True, panic, guard("kernel report", lambda: collect_splat(prog, lines), None)


def _tasks(prog, guard: _Guard) -> tuple[list[TaskRecord], DumpGap | None, TaskSummary | None]:
    """Every task (the walk, and the gap that cut it short), and their summary."""
    tasks, task_gap = walk_tasks(prog)
    if task_gap is not None:
        guard.gaps.append(task_gap)
        guard.warnings.append(f"drgn: tasks: the walk stopped after {len(tasks)} tasks: {task_gap.error}")
    summary = guard("task summary", lambda: summarize_tasks(prog, tasks), None)
    if summary is not None:
        summary.complete = task_gap is None
    return tasks, task_gap, summary


def _saved_log(dump: Dump, log: list, warnings: list[str]) -> tuple[list, str]:
    """The dump's own log; when it is unreadable, the log its writer saved
    beside it (kdump-tools' dmesg.<stamp>, RHEL's vmcore-dmesg.txt)."""
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
