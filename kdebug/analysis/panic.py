"""The panic: message, reason, CPU, task and backtrace; and the other CPUs."""

from __future__ import annotations

import drgn
from drgn.helpers.linux.cpumask import for_each_present_cpu
from drgn.helpers.linux.panic import panic_message as drgn_panic_message
from drgn.helpers.linux.sched import cpu_curr

from kdebug.analysis.gaps import gap
from kdebug.analysis.stack import frame_records, resolve_frames, task_backtrace
from kdebug.analysis.tasks import task_record
from kdebug.report.classify import classify, panic_message
from kdebug.report.model import CpuBacktrace, DumpGap, PanicInfo, Splat
from kdebug.report.taxonomy import culprit_report


def _panic_cpu_var(prog: drgn.Program) -> int | None:
    """kernel/panic.c panic_cpu: the CPU in panic(), PANIC_CPU_INVALID (-1)
    before one; None where the kernel has no such variable."""
    try:
        return prog["panic_cpu"].counter.value_()
    except (LookupError, AttributeError, drgn.FaultError):
        return None


def crash_evidence(prog: drgn.Program, vmcoreinfo: dict[str, str]) -> str:
    """How the dump shows the kernel was crashing; "" for a dump of a kernel
    that was not (a snapshot of a live or hung guest)."""
    cpu = _panic_cpu_var(prog)
    if cpu is not None and cpu >= 0:
        return f"panic() ran on CPU {cpu}"
    # crash_save_vmcoreinfo() appends CRASHTIME as kexec hands over to the
    # capture kernel, also for an oops that starts kdump without panic().
    if "CRASHTIME" in vmcoreinfo:
        return "the kernel started kdump (its VMCOREINFO has CRASHTIME)"
    if cpu is None:
        return "unknown (no panic_cpu in this kernel): taken for a crash"
    return ""


def snapshot_evidence() -> str:
    return ("no panic: panic_cpu is -1 (PANIC_CPU_INVALID) and the VMCOREINFO has no CRASHTIME, "
            "so neither panic() nor kdump had begun when the dump was taken")


def panic_cpu(prog: drgn.Program) -> int | None:
    """The CPU that called panic(), else the crashed thread's (kdump of an oops)."""
    cpu = _panic_cpu_var(prog)
    if cpu is not None and cpu >= 0:
        return cpu
    try:
        return prog.crashed_thread().object.thread_info.cpu.value_()
    except (ValueError, LookupError, AttributeError):
        return None


def collect_panic(prog: drgn.Program, log_lines: list[str]) -> tuple[PanicInfo, list[DumpGap]]:
    """The panic, and the gap that hid its task when the dump lacks it."""
    message = panic_message(log_lines)
    if not message:
        raw = drgn_panic_message(prog)
        message = raw.decode(errors="replace") if raw else ""
    task, frames, gaps = None, [], []
    try:
        thread = prog.crashed_thread()
        task = task_record(prog, thread.object)
        frames = frame_records(prog, thread.stack_trace())
    except drgn.FaultError as e:
        gaps.append(gap(prog, "panic task", e))
    except (ValueError, LookupError):
        pass  # no crashed thread recorded in the dump
    return PanicInfo(message=message, reason=classify(message, log_lines), cpu=panic_cpu(prog),
                     task=task, backtrace=frames), gaps


def collect_splat(prog: drgn.Program, log_lines: list[str]) -> Splat | None:
    """The kernel's report that explains the crash (kdebug.report.taxonomy),
    its stacks given pc, file and line from the dump's debug info."""
    splat = culprit_report(log_lines)
    if splat is not None:
        splat.stacks = {k: resolve_frames(prog, v) for k, v in splat.stacks.items()}
    return splat


def no_panic() -> PanicInfo:
    """The panic section of a snapshot: empty (see Report.kind)."""
    return PanicInfo(message="", reason="other", cpu=None, task=None, backtrace=[])


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
