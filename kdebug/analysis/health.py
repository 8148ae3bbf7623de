"""Can a dump be analysed? Reads that fall on memory the dump does not hold
become :class:`DumpGap` records (where, and what the missing page held), so
a count they cut short is reported as incomplete instead of as the truth."""

from __future__ import annotations

import drgn
from drgn.helpers.linux.mm import PageLRU, PageSlab, virt_to_page
from drgn.helpers.linux.pid import for_each_task

from kdebug.analysis.log import collect_log
from kdebug.analysis.program import cached, open_program
from kdebug.analysis.stack import frame_records
from kdebug.analysis.tasks import task_record
from kdebug.model import TaskRecord
from kdebug.report.model import DumpCheck, DumpGap
from kdebug.vmcore.filter import explain_missing
from kdebug.vmcore.locate import Dump

#: include/linux/page-flags.h PAGE_MAPPING_ANON: the low bit of page->mapping.
PAGE_MAPPING_ANON = 0x1


def page_kind(prog: drgn.Program, address: int | None) -> str:
    """What the page at a kernel address held, from its ``struct page`` (the
    memory map is kernel data, which no filter level drops): "slab",
    "anonymous", "page cache", or "" when unknown."""
    if address is None:
        return ""
    try:
        page = virt_to_page(prog, address)
        if PageSlab(page):  # drgn follows the v6.10 page-type change itself
            return "slab"
        if page.mapping.value_() & PAGE_MAPPING_ANON:
            return "anonymous"
        if PageLRU(page):
            return "page cache"
    except (drgn.FaultError, LookupError, ValueError, AttributeError, OverflowError):
        pass
    return ""


def gap(prog: drgn.Program, section: str, error: drgn.FaultError) -> DumpGap:
    return DumpGap(section=section, error=str(error.message), address=error.address,
                   page=page_kind(prog, error.address))


def walk_tasks(prog: drgn.Program) -> tuple[list[TaskRecord], DumpGap | None]:
    """Every task the walk of ``init_task.tasks`` reaches, by pid, and the gap
    that cut it short (None when it went round to the end)."""
    def compute():
        out: list[TaskRecord] = []
        try:
            for t in for_each_task(prog):
                out.append(task_record(prog, t))
        except drgn.FaultError as e:
            return sorted(out, key=lambda r: (r.pid, r.address)), gap(prog, "tasks", e)
        return sorted(out, key=lambda r: (r.pid, r.address)), None

    return cached(prog, "kdebug.task-walk", compute)


def check_dump(prog: drgn.Program, *, expect_panic: bool) -> DumpCheck:
    """Walk what a report needs: the task list to its end, the panic task
    (when the dump is of a panic) and the log."""
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
