"""The panic: message, reason, CPU, task and backtrace; and the other CPUs."""

from __future__ import annotations

import drgn
from drgn.helpers.linux.cpumask import for_each_present_cpu
from drgn.helpers.linux.panic import panic_message as drgn_panic_message
from drgn.helpers.linux.sched import cpu_curr

from kdebug.analysis.stack import frame_records, task_backtrace
from kdebug.analysis.tasks import task_record
from kdebug.report.classify import classify, panic_message
from kdebug.report.model import CpuBacktrace, PanicInfo


def panic_cpu(prog: drgn.Program) -> int | None:
    """The CPU that called panic() (kernel/panic.c panic_cpu; -1 before a panic)."""
    try:
        cpu = prog["panic_cpu"].counter.value_()
    except (LookupError, AttributeError):
        cpu = -1
    if cpu >= 0:
        return cpu
    try:
        return prog.crashed_thread().object.thread_info.cpu.value_()
    except (ValueError, LookupError, AttributeError):
        return None


def collect_panic(prog: drgn.Program, log_lines: list[str]) -> PanicInfo:
    message = panic_message(log_lines)
    if not message:
        raw = drgn_panic_message(prog)
        message = raw.decode(errors="replace") if raw else ""
    task, frames = None, []
    try:
        thread = prog.crashed_thread()
        task = task_record(prog, thread.object)
        frames = frame_records(prog, thread.stack_trace())
    except (ValueError, LookupError, drgn.FaultError):
        pass  # a dump of a running (not panicked) kernel: no crashed thread
    return PanicInfo(message=message, reason=classify(message, log_lines), cpu=panic_cpu(prog),
                     task=task, backtrace=frames)


def collect_other_cpus(prog: drgn.Program, skip: int | None) -> list[CpuBacktrace]:
    """What every other CPU was running when the dump was taken."""
    out = []
    for cpu in for_each_present_cpu(prog):
        if cpu == skip:
            continue
        try:
            task = cpu_curr(prog, cpu)
            out.append(CpuBacktrace(cpu, task_record(prog, task), task_backtrace(prog, task)))
        except (LookupError, drgn.FaultError, ValueError) as e:
            out.append(CpuBacktrace(cpu, None, [], error=str(e)))
    return out
