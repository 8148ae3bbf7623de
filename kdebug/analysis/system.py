"""System facts (release, CPUs, memory, uptime, taint, cmdline) and the
memory summary, read from the dump with drgn."""

from __future__ import annotations

import datetime as dt

import drgn
from drgn.helpers.linux.cpumask import num_possible_cpus
from drgn.helpers.linux.mm import totalram_pages
from drgn.helpers.linux.panic import tainted
from drgn.helpers.linux.timekeeping import ktime_get_real_seconds, uptime
from drgn.helpers.linux.vmstat import global_node_page_state, nr_free_pages

from kdebug.report.model import MemorySummary, SystemInfo
from kdebug.vmcore.locate import Dump


def _s(obj: drgn.Object) -> str:
    return obj.string_().decode(errors="replace")


def _kb(prog: drgn.Program, pages: int) -> int:
    return pages * prog["PAGE_SIZE"].value_() // 1024


def collect_system(prog: drgn.Program, dump: Dump) -> SystemInfo:
    uts = prog["init_uts_ns"].name
    info = dump.info
    crash_time = info.crash_time
    if crash_time is None:
        try:
            crash_time = ktime_get_real_seconds(prog).value_()
        except (LookupError, drgn.FaultError):
            crash_time = None
    try:
        up = round(uptime(prog), 3)
    except (LookupError, drgn.FaultError):
        up = None
    koff = info.vmcoreinfo.get("KERNELOFFSET")
    return SystemInfo(
        release=_s(uts.release), version=_s(uts.version), build_id=info.build_id,
        arch=_s(uts.machine), hostname=_s(uts.nodename), cpus=num_possible_cpus(prog),
        memory_kb=_kb(prog, totalram_pages(prog)), uptime_s=up,
        crash_time=(dt.datetime.fromtimestamp(crash_time, dt.UTC).isoformat(timespec="seconds")
                    if crash_time else None),
        taint=tainted(prog).replace(" ", ""), cmdline=_s(prog["saved_command_line"]),
        kaslr_offset=int(koff, 16) if koff else None, vmcore=str(dump.original),
        vmcore_format=info.format, vmlinux=str(dump.vmlinux))


def _node_state(prog: drgn.Program, *items: str) -> int | None:
    try:
        return sum(global_node_page_state(prog, prog[i]) for i in items)
    except (LookupError, drgn.FaultError):
        return None


def collect_memory(prog: drgn.Program) -> MemorySummary:
    total = _kb(prog, totalram_pages(prog))
    free = _kb(prog, nr_free_pages(prog))

    def kb(*items):
        v = _node_state(prog, *items)
        return None if v is None else _kb(prog, v)

    return MemorySummary(total_kb=total, free_kb=free, cached_kb=kb("NR_FILE_PAGES"),
                         slab_kb=kb("NR_SLAB_RECLAIMABLE_B", "NR_SLAB_UNRECLAIMABLE_B"),
                         anon_kb=kb("NR_ANON_MAPPED"))
