"""Tier 0: a report from the dump alone, for a dump whose debug info is not
at hand (or with --no-debuginfo).

What it reads: VMCOREINFO (release, build-id, crash time, the printk ring's
layout), the kernel's own kallsyms (symbol addresses for the command line,
taint, panic CPU; names for the saved registers), the log (or the dmesg saved
beside a machine's dump), and the CPUs' registers in the NT_PRSTATUS notes.
The panic's stack is the Call Trace the kernel printed (it symbolised and
unwound it itself, through ORC where it has it, module frames named); the
crashing CPU's saved instruction pointer is named through kallsyms beside it.
Title and signature come from the same functions as the full report's, over
the same log lines, so a dump groups with its full report wherever the kernel
printed its report.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kdebug.analysis.nodebug import DRGN_VERSION, NoDebugProgram
from kdebug.decode.rsp import Cpu, parse_prstatus
from kdebug.errors import KdebugError, VmcoreError
from kdebug.model import PANIC_PREFIX, FrameRecord, PrintkRecord
from kdebug.report.classify import SNAPSHOT, classify, panic_message, signature
from kdebug.report.logtext import CONTEXT, RIP, parse_stack, text
from kdebug.report.model import EngineRun, NoDebugInfo, PanicInfo, Report, SnapshotInfo, SystemInfo
from kdebug.report.taxonomy import culprit_report
from kdebug.vmcore.flattened import reassemble
from kdebug.vmcore.info import VmcoreInfo, identify
from kdebug.vmcore.layouts import DumpSite, locate, read_saved_dmesg
from kdebug.vmcore.notes import prstatus_descs
from kdebug.vmcore.package import debug_package

LOG_TAIL = 60
_CALL_TRACE = re.compile(r"^Call Trace:")
_TAINTED = re.compile(r"\bTainted: ([A-Z ]+?)\s+\d|\bNot tainted\b")
_CMDLINE = re.compile(r"^Command line: (.*)$")
NO_DEBUG_SECTIONS = "tasks, modules, memory, the other CPUs' stacks, file:line, and crash's cross-check"


@dataclass
class LogStack:
    """The crashing task's stack as the kernel printed it."""

    frames: list[FrameRecord]
    cpu: int | None = None
    pid: int | None = None
    comm: str = ""


def _lines_of(log: Sequence[PrintkRecord]) -> list[str]:
    return [line for r in log for line in r.text.split("\n")]


def log_stack(lines: Sequence[str]) -> LogStack:
    """The stack of the crash from the log: the one panic() dumped after its
    "Kernel panic" line, else the last Call Trace before it (an oops that
    panicked or went straight to kdump), with the oops' RIP as frame 0."""
    t = [text(x) for x in lines]
    end = len(t)
    panic_at = next((i for i in range(len(t) - 1, -1, -1) if PANIC_PREFIX in t[i]), None)
    if panic_at is not None:
        for j in range(panic_at + 1, min(panic_at + 4, len(t))):
            if CONTEXT.search(t[j]):
                trace = next((k for k in range(j, min(j + 8, len(t))) if _CALL_TRACE.match(t[k])), None)
                if trace is not None:
                    return _stack(t, j, trace, None)
        end = panic_at
    trace = next((k for k in range(end - 1, -1, -1) if _CALL_TRACE.match(t[k])), None)
    if trace is None:
        return LogStack([])
    ctx = next((k for k in range(trace, max(-1, trace - 60), -1) if CONTEXT.search(t[k])), None)
    rip = next((k for k in range(ctx if ctx is not None else trace, trace) if RIP.match(t[k])), None)
    return _stack(t, ctx, trace, rip)


def _stack(t: list[str], ctx: int | None, trace: int, rip: int | None) -> LogStack:
    frames = []
    if rip is not None:
        m = RIP.match(t[rip])
        frames.append(FrameRecord(0, 0, m.group("func"), int(m.group("off"), 16), int(m.group("size"), 16),
                                  m.group("mod") or ""))
    for f in parse_stack(t, trace + 1, len(t)):
        frames.append(FrameRecord(len(frames), f.pc, f.function, f.offset, f.size, f.module))
    out = LogStack(frames)
    m = CONTEXT.search(t[ctx]) if ctx is not None else None
    if m:
        out.cpu, out.pid, out.comm = int(m.group("cpu")), int(m.group("pid")), m.group("comm")
    return out


def fix_line(info: VmcoreInfo, package: str, urls: str | None = None, cache: KdebugError | None = None) -> str:
    """How to get the full report: the package, or a debuginfod that has the
    build-id; first, when kdebug's cache could not take the download
    (``cache``: kdebug.vmcore.debuginfod.CacheError), what is wrong with it
    and what to do."""
    if cache is not None:
        return (f"the download failed: {cache.message}; {cache.hint or 'fix the cache'} and run again, "
                f"or install {package} or pass --vmlinux")
    bid = info.build_id
    if not bid:
        return f"install {package} (this dump names no build-id: debuginfod cannot be asked)"
    urls = os.environ.get("DEBUGINFOD_URLS", "") if urls is None else urls
    tried = [u.rstrip("/") + f"/buildid/{bid}/debuginfo" for u in urls.split()]
    where = (f"none of DEBUGINFOD_URLS had it ({', '.join(tried)})" if tried
             else f"or set DEBUGINFOD_URLS to a debuginfod serving build-id {bid}")
    return f"install {package} or pass --vmlinux; {where}"


def lookup_key(info: VmcoreInfo) -> str:
    if info.build_id:
        return f"build-id {info.build_id}"
    return (f"release {info.release or 'unknown'} (VMCOREINFO has no BUILD-ID, as before v5.8: "
            "the vmlinux is matched by release only)")


def tier0_report(site: DumpSite, info: VmcoreInfo, original: Path, *, reason: str = "",
                 progress=None, package: str | None = None, urls: str | None = None,
                 cache: KdebugError | None = None) -> Report:
    """The report of ``info``'s dump with no debug info. ``reason``: why
    (the locator's one line), or "" for --no-debuginfo; ``package`` and
    ``urls`` (DEBUGINFOD_URLS) as the locator tried them, when it said;
    ``cache``: kdebug's cache could not take the download."""
    say = progress or (lambda _m: None)
    t0 = time.monotonic()
    say("tier 0: reading the dump without debug info (VMCOREINFO, kallsyms, log)")
    prog = NoDebugProgram(info.path, info.vmcoreinfo)
    facts = prog.facts()
    warnings = [reason] if reason else []
    warnings += [f"tier 0: {w}" for w in facts.warnings]
    log, log_source = facts.log, "vmcore"
    if site.incomplete:
        warnings.append(site.incomplete)
    if not log and site.dmesg is not None:
        try:
            log, log_source = read_saved_dmesg(site.dmesg), str(site.dmesg)
            warnings.append(f"log: the dump's own log is unreadable; the log shown is {site.dmesg}, "
                            "saved beside the dump")
        except VmcoreError as e:
            warnings.append(f"log: {e}")
    lines = _lines_of(log)
    stack = log_stack(lines)
    cpu = facts.panic_cpu if facts.panic_cpu is not None and facts.panic_cpu >= 0 else stack.cpu
    crashed = (facts.panic_cpu is None or facts.panic_cpu >= 0 or "CRASHTIME" in info.vmcoreinfo)
    regs = _registers(info, cpu, stack.pid, warnings)
    # CS with RPL 0: the CPU was in the kernel, where kallsyms can name its RIP.
    kernel_mode = regs is not None and regs.regs.get("cs", 3) & 3 == 0
    pc = prog.frame(0, regs.regs["rip"]) if kernel_mode and prog.kallsyms else None
    system = _system(info, original, facts, lines, log)
    splat = None
    if crashed:
        message = panic_message(lines)
        reason_ = classify(message, lines)
        splat = culprit_report(lines)
        sig = signature(reason_, message, lines, stack.frames, splat)
        panic = PanicInfo(message, reason_, cpu, None, stack.frames)
        kind, snap = "panic", None
    else:
        panic = PanicInfo("", "other", None, None, [])
        kind = "snapshot"
        snap = SnapshotInfo(system.crash_time, system.uptime_s, "no panic: panic_cpu is -1 and the VMCOREINFO "
                            "has no CRASHTIME")
        sig = f"{SNAPSHOT}: blocked tasks unknown without debug info"
    package = package or debug_package(info.release)
    nodebug = NoDebugInfo(
        lacks=f"TIER 0, no debug info for {info.release or 'this kernel'} ({lookup_key(info)}): "
              f"no {NO_DEBUG_SECTIONS}",
        fix=fix_line(info, package, urls, cache), package=package, key=lookup_key(info),
        symbols="kallsyms" if prog.kallsyms else "none",
        stack="the Call Trace the kernel printed in its log" if stack.frames else "none (no Call Trace in the log)",
        task=f"{stack.pid} {stack.comm}" if stack.pid is not None else "", pc=pc)
    if not info.build_id:
        warnings.append(f"build-id: {lookup_key(info)}")
    engines = [EngineRun("drgn", True, round(time.monotonic() - t0, 3), version=DRGN_VERSION)]
    return Report(signature=sig, system=system, panic=panic, log_tail=log[-LOG_TAIL:], log_source=log_source,
                  kind=kind, snapshot=snap, splat=splat, engines=engines, warnings=warnings, tier=0,
                  nodebug=nodebug)


def _registers(info: VmcoreInfo, cpu: int | None, pid: int | None, warnings: list[str]) -> Cpu | None:
    """The crashing CPU's saved registers: the note of that CPU (notes are in
    CPU order), or the one whose pr_pid is the crashing task (kdump)."""
    try:
        notes = [parse_prstatus(d) for d in prstatus_descs(info.path, info.format)]
    except (OSError, ValueError, VmcoreError) as e:
        warnings.append(f"registers: {e}")
        return None
    if cpu is not None and cpu < len(notes):
        return notes[cpu]
    mine = [n for n in notes if pid and n.pid == pid]
    return mine[0] if len(mine) == 1 else None


def _system(info: VmcoreInfo, original: Path, facts, lines: list[str], log: list[PrintkRecord]) -> SystemInfo:
    uts = facts.uts
    taint = facts.taint
    if taint is None:  # no kallsyms: what the last oops header said
        m = next((m for m in (_TAINTED.search(text(x)) for x in reversed(lines)) if m), None)
        taint = (m.group(1).replace(" ", "") if m.group(1) else "") if m else ""
    cmdline = facts.cmdline or next((m.group(1) for m in (_CMDLINE.match(text(x)) for x in lines) if m), "")
    koff = info.vmcoreinfo.get("KERNELOFFSET")
    crash = info.crash_time
    return SystemInfo(
        release=uts.get("release") or info.release or "", version=uts.get("version", ""),
        build_id=info.build_id, arch=uts.get("machine") or info.machine, hostname=uts.get("nodename", ""),
        cpus=facts.cpus, memory_kb=facts.memory_kb,
        # The last log record's time (local_clock): the timekeeper needs types.
        uptime_s=round(log[-1].timestamp_ns / 1e9, 3) if log else None,
        crash_time=dt.datetime.fromtimestamp(crash, dt.UTC).isoformat(timespec="seconds") if crash else None,
        taint=taint, cmdline=cmdline, kaslr_offset=int(koff, 16) if koff else None, vmcore=str(original),
        vmcore_format=info.format, vmlinux="")


def postmortem_nodebug(path, *, missing: Exception | None = None, cache: KdebugError | None = None,
                       progress=None, timeout: float = 300.0) -> Report:
    """vmcore path (file or directory, as ``kdebug postmortem`` takes it) ->
    tier-0 Report. ``missing``: the locator's error that no debug vmlinux
    could be had (None: --no-debuginfo); its package and debuginfod URLs,
    where it names them (kdebug.vmcore.search.DebugInfoMissing), go into the
    report's one line on how to get the full report; so does ``cache``, the
    error of a cache that could not take the download (full, read-only)."""
    reason = ""
    if missing is not None:
        reason = f"debug info: {getattr(missing, 'message', missing)}"
    package = getattr(missing, "package", None)
    urls = getattr(missing, "urls", None)
    site = locate(Path(path))
    info = identify(site.vmcore)
    original = info.path
    if info.format == "flattened":
        info = identify(reassemble(info.path, timeout=timeout))
    return tier0_report(site, info, original, reason=reason, progress=progress, package=package,
                        urls=" ".join(urls) if urls is not None else None,
                        cache=cache)
