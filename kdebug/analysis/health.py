"""Can a dump be analysed? What a report needs is read once, end to end: the
tasks, the panic task and its stack, the log. Reads that fall on memory the
dump does not hold become :class:`DumpGap` records (kdebug.analysis.gaps)."""

from __future__ import annotations

import drgn

from kdebug.analysis.gaps import gap
from kdebug.analysis.log import collect_log
from kdebug.analysis.program import open_program
from kdebug.analysis.stack import frame_records
from kdebug.analysis.tasks import task_record, walk_tasks
from kdebug.report.model import DumpCheck
from kdebug.vmcore.filter import explain_missing
from kdebug.vmcore.locate import Dump


def check_dump(prog: drgn.Program, *, expect_panic: bool) -> DumpCheck:
    """Walk what a report needs: every task (:func:`walk_tasks`, to its
    end), the panic task (when the dump is of a panic) and the log."""
    tasks, task_gap = walk_tasks(prog)
    gaps = [task_gap] if task_gap else []
    panic_task = None
    if expect_panic:
        try:
            thread = prog.crashed_thread()
            panic_task = task_record(prog, thread.object)
            frame_records(prog, thread.stack_trace())  # the report shows its backtrace
        except drgn.FaultError as e:
            gaps.append(gap(prog, "panic task", e))
        except (ValueError, LookupError):
            pass  # no crashed thread recorded: said by the report's panic section
    try:
        log = len(collect_log(prog))
    except drgn.FaultError as e:
        log = 0
        gaps.append(gap(prog, "log", e))
    return DumpCheck(complete=not gaps, tasks=len(tasks), tasks_complete=task_gap is None,
                     panic_task=f"{panic_task.pid} {panic_task.comm}" if panic_task else None,
                     log_records=log, gaps=gaps)


def check_vmcore(dump: Dump, *, expect_panic: bool) -> DumpCheck:
    """:func:`check_dump` of a dump file, with the cause and fix of any gap."""
    prog, _warnings = open_program(dump)
    check = check_dump(prog, expect_panic=expect_panic)
    info = dump.info
    check.dump_level = info.dump_level
    if check.gaps:
        check.cause, check.fix = explain_missing(info.format, info.dump_level, info.vmcoreinfo,
                                                 [g.page for g in check.gaps])
    return check
