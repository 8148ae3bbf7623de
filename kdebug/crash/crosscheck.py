"""drgn against crash, item by item (pure). drgn is the primary engine; crash
is the independent second opinion, and where crash is known to be wrong on a
kernel (crash 8.0.2 on the Debian 6.1 kernel cannot walk its PID hash, so it
lists 2-3 tasks) the row says so instead of calling it a disagreement."""

from __future__ import annotations

import re

from kdebug.crash.parse import CrashBacktrace, call_chain, parse_bt, parse_kmem_i, parse_mod, parse_sys, sys_cpus
from kdebug.model import FrameRecord
from kdebug.report.classify import MACHINERY
from kdebug.report.model import CrossCheck, MemorySummary, PanicInfo, SystemInfo

_PANIC_PREFIX = "Kernel panic - not syncing: "
TOP_FRAMES = 3


def _version_tuple(version: str) -> tuple[int, ...]:
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", version)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


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


def cross_check(system: SystemInfo, panic: PanicInfo, task_count: int, memory: MemorySummary | None,
                module_names: list[str], outputs: dict[str, str], crash_version: str,
                crash_warnings: list[str], oops_lines: list[str] = ()) -> list[CrossCheck]:
    sys_ = parse_sys(outputs.get("sys", ""))
    bts = parse_bt(outputs.get("bt", ""))
    bt: CrashBacktrace | None = bts[0] if bts else None
    rows = [_row("release", system.release, sys_.get("RELEASE"))]
    crash_msg = sys_.get("PANIC", "").removeprefix(_PANIC_PREFIX) or None
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
    old = _version_tuple(crash_version) < (8, 0, 3)
    pid_hash = any("PID hash" in w for w in crash_warnings)
    note = ""
    if old:
        note = ("crash < 8.0.3 misses tasks on kernels with the flexible-array struct pid "
                "(Debian backported it to 6.1); drgn walks the task list instead")
        if pid_hash:
            note += "; crash warned: active task not found in PID hash"
    rows.append(_row("task count", task_count, sys_.get("TASKS"), note, limitation=old))
    rows.append(_row("CPUs", system.cpus, sys_cpus(sys_)))
    kmem = parse_kmem_i(outputs.get("kmem-i", ""))
    if memory is not None and "TOTAL MEM" in kmem:
        rows.append(_row("memory total (KiB)", memory.total_kb, kmem["TOTAL MEM"] * 4))
    mods = parse_mod(outputs.get("mod", ""))
    if "mod" in outputs:
        mine, theirs = set(module_names), {m.name for m in mods}
        diff = sorted(mine ^ theirs)
        rows.append(_row("modules", f"{len(mine)} modules", f"{len(theirs)} modules" if not diff else
                         f"{len(theirs)} modules (differ)", "only in one: " + ", ".join(diff) if diff else ""))
    return rows
