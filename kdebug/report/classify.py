"""Why the kernel died, and a title that groups dumps of the same bug (pure).

The title follows the spirit of syzkaller's report titles: a headline for the
kind of failure plus the function to blame, with no addresses, pids or CPU
numbers, so that the same bug gives the same title across reboots and KASLR
and different bugs give different titles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kdebug.model import FrameRecord
from kdebug.report.model import Splat
from kdebug.report.taxonomy import culprit_report

_PANIC_PREFIX = "Kernel panic - not syncing: "
_NULL = re.compile(r"BUG: kernel NULL pointer dereference")
_BUG = re.compile(r"kernel BUG at (\S+?):\d+")
_WARN = re.compile(r"WARNING: CPU: \d+ PID: \d+ at (\S+?):\d+ (\S+?)\+")
_OOPS = re.compile(r"(BUG: unable to handle page fault|general protection fault|"
                   r"BUG: unable to handle kernel|Oops: )")
_HUNG = re.compile(r"INFO: task (\S+):\d+ blocked for more than")
_SOFT = re.compile(r"BUG: soft lockup")
_HARD = re.compile(r"(?i)hard LOCKUP")
_OOM = re.compile(r"(?i)out of memory|deadlocked on memory")
#: "RIP: 0010:func+0x1f/0x30": the kernel-mode (CS 0010) instruction that faulted.
_RIP = re.compile(r"RIP: 0010:([A-Za-z_][\w.]*)\+0x")
_CALL = re.compile(r"^\s+(?:\? )?([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")

#: Frames that report or carry out a panic rather than cause it. The port-I/O
#: accessors are where QEMU stops a vCPU that writes pvpanic's event (QEMU 10
#: pauses it right at the OUT): generic helpers, never the culprit.
MACHINERY = frozenset("""
pvpanic_send_event pvpanic_panic_notify notifier_call_chain atomic_notifier_call_chain
__outb outb iowrite8 iowrite16 iowrite32 __raw_writeb
panic vpanic nmi_panic __crash_kexec crash_kexec crash_setup_regs machine_crash_shutdown
native_machine_crash_shutdown machine_kexec oops_end die __die die_addr dump_stack dump_stack_lvl show_stack
panic_smp_self_stop nmi_panic_self_stop crash_nmi_callback check_panic_on_warn __warn
warn_slowpath_fmt report_bug handle_bug exc_invalid_op asm_exc_invalid_op exc_page_fault
asm_exc_page_fault page_fault_oops kernelmode_fixup_or_oops __bad_area_nosemaphore
bad_area_nosemaphore do_user_addr_fault handle_page_fault do_error_trap do_trap
exc_general_protection asm_exc_general_protection exc_nmi asm_exc_nmi default_do_nmi
end_repeat_nmi make_task_dead rewind_stack_and_make_dead do_exit
""".split())  # noqa: SIM905 (a word list reads better than a literal)
#: Frames a blocked or sleeping task sits in, whoever put it there.
SCHEDULER = frozenset("""
__schedule __schedule_loop schedule schedule_timeout schedule_preempt_disabled io_schedule io_schedule_timeout
schedule_hrtimeout_range_clock schedule_hrtimeout_range __mutex_lock mutex_lock
__mutex_lock_slowpath rwsem_down_read_slowpath rwsem_down_write_slowpath down_read down_write
wait_for_completion __wait_for_common wait_for_common do_wait_for_common context_switch
__switch_to __switch_to_asm
""".split())  # noqa: SIM905 (a word list reads better than a literal)

#: Source files of the allocator, the page-fault path and user-copy helpers.
_OOM_PATH = re.compile(r"(?:.*/)?(?:mm/|arch/[^/]+/mm/|arch/[^/]+/lib/|include/|arch/[^/]+/include/)")

_HEADLINES = {
    "sysrq": "sysrq: crash triggered",
    "null-deref": "BUG: kernel NULL pointer dereference",
    "bug": "kernel BUG",
    "warn": "WARNING",
    "hung-task": "INFO: task hung",
    "soft-lockup": "BUG: soft lockup",
    "hard-lockup": "watchdog: hard LOCKUP",
    "oom": "out of memory",
}


def panic_message(lines: Sequence[str]) -> str:
    """The last "Kernel panic - not syncing: ..." message, without the prefix."""
    for line in reversed(lines):
        i = line.find(_PANIC_PREFIX)
        if i >= 0:
            return line[i + len(_PANIC_PREFIX):].strip()
    # An oops that did not reach panic() (kdump on oops): the most specific
    # header of the last oops (NULL dereference, BUG at) before the generic "Oops:".
    block = _last_oops_block(lines).splitlines()
    for pattern in (_NULL, _BUG, _OOPS):
        for line in block:
            m = pattern.search(line)
            if m:
                return line[m.start():].strip()
    return ""


def classify(message: str, lines: Sequence[str]) -> str:
    """One of kdebug.report.model.REASONS, from the panic message and the log."""
    text = "\n".join(lines)
    if "sysrq triggered crash" in message or "sysrq: Trigger a crash" in text[-4000:]:
        return "sysrq"
    if "hung_task" in message or ("blocked tasks" in message and _HUNG.search(text)):
        return "hung-task"
    if "softlockup" in message or _SOFT.search(message):
        return "soft-lockup"
    if _HARD.search(message):
        return "hard-lockup"
    if _OOM.search(message):
        return "oom"
    if "panic_on_warn" in message:
        return "warn"
    block = _last_oops_block(lines)
    if _NULL.search(block):
        return "null-deref"
    if _BUG.search(block):
        return "bug"
    if _SOFT.search(block):
        return "soft-lockup"
    if "NMI" in message:
        return "nmi"
    if _OOPS.search(block) or "Fatal exception" in message:
        return "oops"
    return "other"


def _last_oops_block(lines: Sequence[str]) -> str:
    """The log from the last oops/BUG/WARNING header on (where the failure is told)."""
    start = 0
    for i, line in enumerate(lines):
        if _OOPS.search(line) or _NULL.search(line) or _BUG.search(line) or _WARN.search(line) \
                or _SOFT.search(line) or "cut here" in line:
            start = i
            # An "Oops:" line follows its headline ("BUG: kernel NULL pointer
            # dereference", "#PF: ...", "PGD 0"): start at the headline.
            for j in range(i - 1, max(-1, i - 8), -1):
                if _NULL.search(lines[j]) or _OOPS.search(lines[j]) or "cut here" in lines[j]:
                    start = j
            # keep scanning: the last header wins
    return "\n".join(lines[start:]) if start or lines else ""


def oops_block(lines: Sequence[str]) -> str:
    return _last_oops_block(lines)


def _plain(function: str) -> str:
    """Drop compiler suffixes (.cold, .isra.0, .constprop.0, .part.0): they vary by build."""
    return function.split(".", 1)[0]


def culprit(reason: str, lines: Sequence[str], frames: Sequence[FrameRecord]) -> str:
    """The function to blame: the faulting RIP for oops-like failures, else the
    first frame of the panicking backtrace that is not panic machinery."""
    block = _last_oops_block(lines)
    if reason in ("null-deref", "bug", "warn", "oops", "soft-lockup", "hard-lockup"):
        m = _RIP.search(block)
        if m:
            return _plain(m.group(1))
        w = _WARN.search(block)
        if w:
            return _plain(w.group(2))
    if reason == "hung-task":
        for line in block.splitlines():
            m = _CALL.match(line)
            if m and _plain(m.group(1)) not in SCHEDULER:
                return _plain(m.group(1))
    for f in frames:
        name = _plain(f.function)
        if reason == "oom" and _OOM_PATH.match(f.file):
            continue  # the allocator and the fault path: blame who asked for memory
        if name and name not in MACHINERY:
            return name
    return "unknown"


_ADDR = re.compile(r"\b(?:0x)?[0-9a-f]{8,}\b|\b0x[0-9a-f]+\b")
_NUMBERED = re.compile(r"(?i)\b(cpu|pid|task|reason|exitcode|code)([ #:=]*)\d+")


def normalize(message: str) -> str:
    """A message without the parts that change from one boot to the next."""
    s = _ADDR.sub("ADDR", message)
    s = _NUMBERED.sub(lambda m: f"{m.group(1)}{m.group(2)}N", s)
    return re.sub(r"\s+", " ", s).strip().rstrip(".")


def signature(reason: str, message: str, lines: Sequence[str], frames: Sequence[FrameRecord],
              splat: Splat | None = None) -> str:
    """The kernel's own report, named by kdebug.report.taxonomy (``splat``,
    found in ``lines`` when not given); else a headline for the panic reason
    and the culprit (a sysrq crash, an OOM panic, an NMI)."""
    splat = splat or culprit_report(lines)
    if splat is not None:
        return splat.title if splat.guilty else f"{splat.headline} in {culprit(reason, lines, frames)}"
    headline = _HEADLINES.get(reason) or f"panic: {normalize(message) or 'unknown'}"
    return f"{headline} in {culprit(reason, lines, frames)}"


#: Every snapshot's title starts so; a crash's starts with a _HEADLINES entry or "panic:".
SNAPSHOT = "snapshot"


def snapshot_signature(blocked: Sequence[Sequence[FrameRecord]]) -> str:
    """The title of a dump without a panic: where its D-state tasks wait (the
    first frame of each that is not the scheduler's, the most common one),
    so snapshots of the same hang group together and never with a crash."""
    where: dict[str, int] = {}
    for frames in blocked:
        name = next((_plain(f.function) for f in frames
                     if f.function and _plain(f.function) not in SCHEDULER), "")
        if name:
            where[name] = where.get(name, 0) + 1
    if where:
        top = max(sorted(where), key=lambda n: where[n])
        return f"{SNAPSHOT}: tasks blocked in {top}"
    if blocked:
        return f"{SNAPSHOT}: tasks blocked"
    return f"{SNAPSHOT}: no blocked tasks"
