"""kd-break PRESET: breakpoints on the moments that matter, each printing a
short report (cpu, task, backtrace, last log lines) when it hits."""

from __future__ import annotations

import gdb

from kdebug.decode.breaks import PRESETS, preset
from kdebug.format import format_backtrace, format_dmesg

from .backtrace import walk
from .command import Command, register
from .cpus import current_task_addr, selected_cpu
from .dmesg import collect_printk
from .tasks import read_task

_ours: set[int] = set()


def _report(event) -> None:
    bps = getattr(event, "breakpoints", None) or []
    if not any(b.number in _ours for b in bps):
        return
    try:
        cpu = selected_cpu()
        t = read_task(current_task_addr(cpu))
        lines = [f"kd-break: {bps[0].location} hit on CPU {cpu}, task {t.pid} ({t.comm})",
                 format_backtrace(walk(8))]
        recs = collect_printk()[-3:]
        if recs:
            lines += ["last log lines:", format_dmesg(recs)]
        gdb.write("\n".join(lines) + "\n")
    except Exception as e:  # a report must never break the stop itself
        gdb.write(f"kd-break: (no report: {e})\n")


gdb.events.stop.connect(_report)


def _exists(fn: str) -> bool:
    try:
        return gdb.lookup_global_symbol(fn) is not None or gdb.lookup_static_symbol(fn) is not None \
            or gdb.parse_and_eval(f"&{fn}") is not None
    except gdb.error:
        return False


@register
class KdBreak(Command):
    """Arm a breakpoint preset.

    Usage: kd-break boot | panic | module | syscall NAME | sched PID | list"""

    name = "kd-break"
    needs_target = False

    def arguments(self, p):
        p.add_argument("words", nargs="+", metavar="PRESET [ARG]")

    def run(self, a):
        if a.words == ["list"]:
            return "\n".join(f"{k:8} {v}" for k, v in PRESETS.items())
        out = []
        for spec in preset(a.words):
            loc = next((n for n in (spec.location, *spec.alternatives) if _exists(n)), None)
            if loc is None:
                out.append(f"kd-break: no function {spec.location} in this kernel (skipped)")
                continue
            bp = gdb.Breakpoint(loc, type=gdb.BP_HARDWARE_BREAKPOINT if spec.hardware else gdb.BP_BREAKPOINT,
                                internal=False)
            if spec.condition:
                bp.condition = spec.condition
            _ours.add(bp.number)
            out.append(f"kd-break: #{bp.number} {'hbreak' if spec.hardware else 'break'} {loc}"
                       + (f" if {spec.condition}" if spec.condition else ""))
        return "\n".join(out)
