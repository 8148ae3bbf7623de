"""The kernel's own bug reports in its log, named the way syzkaller names them (pure).

A report is what one of the kernel's detectors prints: KASAN, KFENCE, UBSAN,
lockdep, refcount_t, list debugging, the scheduler's atomic-context checks,
the RCU stall detector, the x86 trap handlers (general protection fault,
divide error, invalid opcode, double fault, stack guard page), the page
fault oops, BUG() and WARN(), the lockup and hung-task watchdogs.
:func:`find_reports` finds every report in a log (console text with or
without printk timestamps, or the dump's log records) and :func:`culprit_report`
picks the one that explains the crash.

Each report gets a title in syzkaller's style ("KASAN: slab-use-after-free
Read in foo", "UBSAN: shift-out-of-bounds in foo", "possible deadlock in
foo"): the kind of bug plus the guilty function, the first frame that is not
a generic helper (allocator, locking primitive, sanitizer internals, the
report and panic machinery, list and refcount checkers, sleeping
primitives). No addresses, pids or CPU numbers, so the same bug gives the
same title after every boot.

Every format below is the one the kernels kdebug runs print (the 6.1 and
6.12 sources named beside each pattern); where one changed, the pattern
takes both and the comment cites the change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kdebug.model import FrameRecord
from kdebug.report.model import Access, Splat

# -- lines and frames ---------------------------------------------------------

#: A console line's printk prefix: "[   12.345678] ", optionally with the
#: caller id of CONFIG_PRINTK_CALLER ("[  T95] "), or a syslog level "<3>".
_PREFIX = re.compile(r"^(?:<\d>)?(?:\[\s*\d+\.\d+\])?(?:\[\s*[TC]\d+\])? ?")
#: " func+0x1f/0x30 [module]" as %pS/%pB print it (lib/vsprintf.c), also
#: after "[<address>] " (print_ip_sym); "? " marks a frame the unwinder
#: only guessed (arch/x86/kernel/dumpstack.c printk_stack_address). A
#: module may carry its build-id after its name (CONFIG_STACKTRACE_BUILD_ID).
_FRAME = re.compile(r"^\s*(?:\[<[0-9a-f]+>\]\s*)?(?P<q>\? )?(?P<func>[A-Za-z_.$][\w.$]*)"
                    r"\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)(?: \[(?P<mod>[\w-]+)(?: [0-9a-f]+)?\])?\s*$")
_BARE = re.compile(r"^\s*(?:\? )?0x[0-9a-f]+\s*$")
#: The stack markers show_trace_log_lvl prints between frames.
_MARKER = re.compile(r"^\s*</?(?:TASK|IRQ|NMI|SOFTIRQ|#DF|ENTRY_TRAMPOLINE|[A-Z_#]+)>\s*$")
#: "RIP: 0010:func+0x1f/0x30 [mod]" (__show_regs): the kernel-mode instruction.
_RIP = re.compile(r"^RIP: 0010:(?P<func>[A-Za-z_.$][\w.$]*)\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)"
                  r"(?: \[(?P<mod>[\w-]+)(?: [0-9a-f]+)?\])?")
_CALL_TRACE = re.compile(r"^(?:Call Trace|stack backtrace):")
#: dump_stack_print_info (lib/dump_stack.c). "UID: %u" came with "lib/dump_stack:
#: report process UID in dump_stack_print_info()" (v6.11): 6.12 prints it, 6.1 not.
_CONTEXT = re.compile(r"\bCPU: \d+ (?:UID: \d+ )?PID: (\d+) Comm: (\S+)")


def text(line: str) -> str:
    """A log line without its printk timestamp (console) and trailing CR."""
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1)


def plain(function: str) -> str:
    """Drop compiler suffixes (.cold, .isra.0, .constprop.0, .part.0): they vary by build."""
    return function.split(".", 1)[0]


def _frame(m: re.Match, index: int) -> FrameRecord:
    return FrameRecord(index=index, pc=0, function=m.group("func"), offset=int(m.group("off"), 16),
                       size=int(m.group("size"), 16), module=m.group("mod") or "")


def parse_stack(lines: Sequence[str], start: int, end: int) -> list[FrameRecord]:
    """The frames printed from ``lines[start]`` on, up to the first line that
    is neither a frame nor a stack marker (or ``end``); guessed ("? ") frames
    are left out, as the unwinder does not vouch for them."""
    frames: list[FrameRecord] = []
    for i in range(start, end):
        t = text(lines[i])
        if _MARKER.match(t):
            continue
        m = _FRAME.match(t)
        if m is None:
            # A register dump inside the trace (an interrupt entry) goes on,
            # and so does an address no symbol covers ("? 0xffffffffc029e000":
            # a module's freed init text).
            if t.startswith(("RIP:", "Code:", "RSP:", "RAX:", "RDX:", "RBP:", "R10:", "R13:")) or _BARE.match(t):
                continue
            if frames or t.strip():
                break
            continue
        if not m.group("q"):
            frames.append(_frame(m, len(frames)))
    return frames


# -- what is never guilty -----------------------------------------------------

#: Generic helpers that report, check or carry out a bug on someone else's
#: behalf (learned from syzkaller's list, written for the kernels kdebug runs).
SKIP_EXACT = frozenset("""
panic vpanic nmi_panic check_panic_on_warn __warn warn_slowpath_fmt __warn_printk report_bug handle_bug
dump_stack dump_stack_lvl show_stack show_trace_log_lvl show_regs __show_regs die __die die_addr oops_end
do_error_trap do_trap do_int3 exc_invalid_op asm_exc_invalid_op exc_general_protection
asm_exc_general_protection exc_divide_error asm_exc_divide_error exc_double_fault asm_exc_double_fault
handle_stack_overflow exc_page_fault asm_exc_page_fault page_fault_oops kernelmode_fixup_or_oops
__bad_area_nosemaphore bad_area_nosemaphore do_user_addr_fault handle_page_fault
printk _printk vprintk vprintk_emit vprintk_default print_report print_address_description
memcpy memmove memset memcmp memchr strcpy strncpy strscpy strlcpy strlen strnlen strcmp strncmp strchr
__memcpy __memmove __memset copy_from_user copy_to_user _copy_from_user _copy_to_user
kmalloc __kmalloc kmalloc_trace kmalloc_node __kmalloc_node kzalloc kcalloc krealloc kvmalloc kvmalloc_node
kfree kvfree kfree_sensitive vmalloc vzalloc vfree kmem_cache_alloc kmem_cache_alloc_node
kmem_cache_alloc_lru kmem_cache_free __kmem_cache_free __kmem_cache_alloc_node ___slab_alloc __slab_alloc
__slab_free slab_free slab_alloc_node slab_free_freelist_hook alloc_pages __alloc_pages
mutex_lock mutex_lock_nested mutex_lock_interruptible mutex_lock_killable mutex_trylock mutex_unlock
__mutex_lock __mutex_unlock_slowpath __mutex_lock_slowpath down up down_read down_write up_read up_write
down_read_nested down_write_nested down_trylock down_read_trylock down_write_trylock
do_raw_spin_lock do_raw_spin_unlock queued_spin_lock_slowpath osq_lock osq_unlock
lock_acquire lock_release lock_acquired lock_contended __lock_acquire __lock_release
refcount_warn_saturate kref_put kref_get
__might_resched __might_sleep __might_fault might_sleep might_fault __cant_sleep
schedule __schedule schedule_debug __schedule_bug __schedule_loop schedule_timeout
schedule_timeout_uninterruptible schedule_timeout_interruptible schedule_timeout_killable
schedule_preempt_disabled preempt_schedule preempt_schedule_common msleep msleep_interruptible ssleep
usleep_range usleep_range_state io_schedule io_schedule_timeout wait_for_completion __wait_for_common
wait_for_common do_wait_for_common context_switch __switch_to __switch_to_asm
pvpanic_send_event pvpanic_panic_notify notifier_call_chain atomic_notifier_call_chain
__crash_kexec crash_kexec crash_setup_regs machine_crash_shutdown native_machine_crash_shutdown
""".split())  # noqa: SIM905 (a word list reads better than a literal)

#: Name prefixes of the same, compared without leading underscores
#: ("____kasan_slab_free", "_raw_spin_lock", "__list_del_entry_valid"):
#: sanitizer runtimes, lock implementations, list and refcount checkers,
#: lockdep, allocator internals, the stack dumpers and the RCU stall printer.
SKIP_PREFIXES = (
    "asan_", "ubsan_", "sanitizer_", "kasan_", "kfence_", "kmsan_", "kcsan_", "check_memory_region",
    "check_region_inline", "print_report", "print_address_description", "print_error_description",
    "print_track", "dump_stack", "show_trace", "warn_slowpath", "might_resched", "might_sleep",
    "raw_spin_", "raw_read_", "raw_write_", "do_raw_spin_", "do_raw_read_", "do_raw_write_", "spin_lock",
    "spin_unlock", "queued_spin_", "queued_read_", "queued_write_", "osq_", "mutex_lock", "mutex_unlock",
    "mutex_trylock", "rt_mutex_", "rwsem_", "down_read", "down_write", "down_interruptible", "down_killable",
    "down_timeout", "down_trylock", "down_common", "up_read", "up_write",
    "list_add", "list_del", "list_valid", "list_move", "list_splice", "list_replace", "hlist_add", "hlist_del",
    "refcount_", "kref_",
    "lockdep_", "print_circular_bug", "print_deadlock_bug", "print_usage_bug", "print_unlock_imbalance_bug",
    "check_noncircular", "check_prev_add", "check_prevs_add", "validate_chain", "mark_lock", "debug_locks_off",
    "lock_acquire", "lock_release",
    "stack_trace_save", "stack_depot_", "arch_stack_walk",
    "kmalloc", "kzalloc", "kcalloc", "krealloc", "kvmalloc", "kmem_cache_", "slab_", "cache_alloc",
    "rcu_dump_cpu_stacks", "print_cpu_stall", "check_cpu_stall", "rcu_sched_clock_irq", "rcu_pending",
    "nmi_cpu_backtrace", "nmi_trigger_cpumask_backtrace", "trigger_single_cpu_backtrace",
    "arch_trigger_cpumask_backtrace",
)


def skipped(function: str, extra: tuple[str, ...] = ()) -> bool:
    """Whether ``function`` is a generic helper, never the guilty frame."""
    name = plain(function)
    bare = name.lstrip("_")
    return name in SKIP_EXACT or bare.startswith(SKIP_PREFIXES) or (bool(extra) and name.startswith(extra))


def guilty(frames: Sequence[FrameRecord | str], extra: tuple[str, ...] = ()) -> str:
    """The first frame that is not a generic helper; "" when every one is."""
    for f in frames:
        name = f if isinstance(f, str) else f.function
        if name and not skipped(name, extra):
            return plain(name)
    return ""


# -- the records --------------------------------------------------------------

#: Every kind find_reports names, in no particular order.
KINDS = ("kasan", "kfence", "ubsan", "lockdep", "refcount", "list", "atomic-sleep", "sched-atomic",
         "rcu-stall", "stack-overflow", "double-fault", "gpf", "divide-error", "invalid-opcode", "oops",
         "null-deref", "page-fault", "bug", "warn", "soft-lockup", "hard-lockup", "hung-task")


# -- the formats ----------------------------------------------------------------

@dataclass(frozen=True)
class _Format:
    kind: str
    header: re.Pattern
    parse: Callable[[re.Match, list[str], int, int], Splat]
    #: Kinds of header that, within a few lines after this one, belong to
    #: the same report (the die() header after "kernel BUG at", the WARNING
    #: after "refcount_t: ...").
    absorbs: tuple[str, ...] = ()


def _find(pattern: re.Pattern, lines: list[str], start: int, end: int) -> tuple[int, re.Match] | None:
    for i in range(start, end):
        m = pattern.search(text(lines[i]))
        if m:
            return i, m
    return None


def _call_trace(lines: list[str], start: int, end: int) -> list[FrameRecord]:
    """The frames after the first "Call Trace:" in the span."""
    hit = _find(_CALL_TRACE, lines, start, end)
    return parse_stack(lines, hit[0] + 1, end) if hit else []


def _rips(lines: list[str], start: int, end: int) -> list[tuple[int, re.Match]]:
    return [(i, m) for i in range(start, end) if (m := _RIP.match(text(lines[i])))]


def _pid(lines: list[str], start: int, end: int) -> int | None:
    for i in range(start, end):
        m = _CONTEXT.search(text(lines[i]))
        if m:
            return int(m.group(1))
    return None


def _rip_then_trace(lines: list[str], start: int, end: int,
                    extra: tuple[str, ...] = ()) -> tuple[str, list[FrameRecord]]:
    """The faulting function (the first RIP line) unless it is a generic
    helper, else the first guilty frame of the call trace."""
    trace = _call_trace(lines, start, end)
    rips = _rips(lines, start, end)
    names = [rips[0][1].group("func")] if rips else []
    return guilty([*names, *trace], extra), trace


def _splat(kind: str, bug_type: str, headline: str, who: str, lines: list[str], i: int, end: int, **kw) -> Splat:
    return Splat(kind=kind, bug_type=bug_type, headline=headline, title=f"{headline} in {who or 'unknown'}", guilty=who,
                 header=text(lines[i]).strip(), line=i, pid=kw.pop("pid", None) or _pid(lines, i, end), **kw)


# KASAN, mm/kasan/report.c print_error_description: "BUG: KASAN: %s in %pS",
# then "%s of size %zu at addr %px by task %s/%d" (or "%s at addr ...", or
# "Free of addr %px by task %s/%d" for a bad free). The slab use-after-free
# type is "use-after-free" up to v6.2 and "slab-use-after-free" since
# 0e301731f558 ("kasan: infer allocation size by scanning metadata", v6.3);
# "double-free or invalid-free" became "double-free" / "invalid-free" with
# "kasan: better invalid/double-free report header" (v6.1). The stacks:
# "Allocated by task %u:", "Freed by task %u:" (CONFIG_KASAN_EXTRA_INFO, from
# "kasan: record and report more information" in v6.8, adds " on cpu %d at
# %lu.%06lus" before the colon).
_KASAN = re.compile(r"BUG: KASAN: (?P<type>[a-z][a-z -]*?) in (?P<func>[A-Za-z_.$][\w.$]*)\+0x")
_KASAN_ACCESS = re.compile(r"^(?P<op>Read|Write)(?: of size (?P<size>\d+))? at addr (?P<addr>[0-9a-f]+) "
                           r"by task (?P<task>\S+)")
_KASAN_FREE = re.compile(r"^Free of addr (?P<addr>[0-9a-f]+) by task (?P<task>\S+)")
_KASAN_TRACK = re.compile(r"^(?P<what>Allocated|Freed) by task \d+(?: on cpu \d+ at [\d.]+s)?:")


def _task_pid(task: str) -> int | None:
    comm, _, pid = task.rpartition("/")
    return int(pid) if comm and pid.isdigit() else None


def _kasan(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    bug_type = m.group("type")
    access = None
    for j in range(i + 1, min(i + 4, end)):
        t = text(lines[j])
        a = _KASAN_ACCESS.match(t)
        if a:
            access = Access(a.group("op"), int(a.group("size")) if a.group("size") else None,
                            int(a.group("addr"), 16), a.group("task"))
            break
        f = _KASAN_FREE.match(t)
        if f:
            access = Access("Free", None, int(f.group("addr"), 16), f.group("task"))
            break
    stacks = {"access": _call_trace(lines, i, end)}
    for j in range(i + 1, end):
        tr = _KASAN_TRACK.match(text(lines[j]))
        if tr:
            stacks["alloc" if tr.group("what") == "Allocated" else "free"] = parse_stack(lines, j + 1, end)
    who = guilty([m.group("func"), *stacks["access"]])
    if access is not None and access.op in ("Read", "Write"):
        headline = f"KASAN: {bug_type} {access.op}"
    else:
        headline = f"KASAN: {bug_type}"
    pid = _task_pid(access.task) if access else None
    return _splat("kasan", bug_type, headline, who, lines, i, end, access=access, stacks=stacks, pid=pid)


# KFENCE, mm/kfence/report.c kfence_report_error: "BUG: KFENCE: %s %s in %pS"
# (use-after-free/out-of-bounds read/write), "invalid free", "memory
# corruption", "invalid read/write"; then "Use-after-free read at 0x%p (in
# kfence-#%td):" and the stack; "kfence-#%td: ..., size=%d, cache=%s", then
# "allocated by task %d on cpu %d at %lu.%06lus:" and "freed by task ...";
# 6.12 adds the age before the colon, " (%lu.%06lus ago)", and later kernels
# say "rcu freeing" for an object on its way out through RCU.
_KFENCE = re.compile(r"BUG: KFENCE: (?P<type>[a-z][a-z -]*?) in (?P<func>[A-Za-z_.$][\w.$]*)\+0x")
_KFENCE_TRACK = re.compile(r"^(?P<what>allocated|freed|rcu freeing) by task \d+ on cpu \d+ at [\d.]+s"
                           r"(?: \([\d.]+s ago\))?:")


def _kfence(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    bug_type = m.group("type")
    stacks: dict[str, list[FrameRecord]] = {"access": []}
    # The line after the header ends with ':' ("Use-after-free read at 0x%p
    # (in kfence-#%td):", "Invalid free of 0x%p ...:"): the stack follows.
    for j in range(i + 1, min(i + 4, end)):
        if text(lines[j]).rstrip().endswith(":"):
            stacks["access"] = parse_stack(lines, j + 1, end)
            break
    for j in range(i + 1, end):
        tr = _KFENCE_TRACK.match(text(lines[j]))
        if tr:
            stacks["alloc" if tr.group("what") == "allocated" else "free"] = parse_stack(lines, j + 1, end)
    op = bug_type.rsplit(" ", 1)[-1]
    op = op if op in ("read", "write") else "Free" if bug_type == "invalid free" else ""
    ctx = _find(_CONTEXT, lines, i, end)  # the report names its task only in dump_stack's line
    task = f"{ctx[1].group(2)}/{ctx[1].group(1)}" if ctx else ""
    access = Access(op, task=task) if op else None
    who = guilty([m.group("func"), *stacks["access"]])
    return _splat("kfence", bug_type, f"KFENCE: {bug_type}", who, lines, i, end, access=access, stacks=stacks)


# UBSAN, lib/ubsan.c ubsan_prologue: "UBSAN: %s in %s:%d:%d" (the check that
# fired and the source location), a line saying what, then dump_stack().
_UBSAN = re.compile(r"^UBSAN: (?P<type>[a-z][\w-]*) in (?P<where>\S+):\d+:\d+")


def _ubsan(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    trace = _call_trace(lines, i, end)
    detail = text(lines[i + 1]).strip() if i + 1 < end else ""
    return _splat("ubsan", m.group("type"), f"UBSAN: {m.group('type')}", guilty(trace), lines, i, end,
                  detail=detail, stacks={"call": trace})


# lockdep, kernel/locking/lockdep.c: "WARNING: possible circular locking
# dependency detected" (print_circular_bug_header), "WARNING: possible
# recursive locking detected" (print_deadlock_bug), "WARNING: inconsistent
# lock state" (print_usage_bug), each naming the lock the task "is trying to
# acquire" / "takes" with print_lock()'s "..., at: %pS"; "WARNING: bad unlock
# balance detected!" (print_unlock_imbalance_bug) with print_ip_sym()'s
# "[<%px>] %pS" after "is trying to release lock (...) at:".
_LOCKDEP = re.compile(r"^WARNING: (?P<type>possible circular locking dependency|possible recursive locking|"
                      r"inconsistent lock state|bad unlock balance)(?: detected!?)?")
_AT = re.compile(r", at: (?P<func>[A-Za-z_.$][\w.$]*)\+0x")
_LOCKDEP_TITLES = {"possible circular locking dependency": "possible deadlock",
                   "possible recursive locking": "possible deadlock",
                   "inconsistent lock state": "inconsistent lock state",
                   "bad unlock balance": "WARNING: bad unlock balance"}


_ACQUIRE = re.compile(r"is trying to acquire lock:|\] takes:|is trying to acquire:")
_RELEASE = re.compile(r"is trying to release lock")
_COMM_PID = re.compile(r"^(\S+)/(\d+)\b")


def _lockdep(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    bug_type = m.group("type")
    trace = _call_trace(lines, i, end)
    named: list[str] = []
    cue = _find(_RELEASE if bug_type == "bad unlock balance" else _ACQUIRE, lines, i, end)
    if cue is not None:
        if bug_type == "bad unlock balance":
            f = _FRAME.match(text(lines[cue[0] + 1])) if cue[0] + 1 < end else None
            named = [f.group("func")] if f else []
        else:
            at = _find(_AT, lines, cue[0], min(cue[0] + 4, end))
            named = [at[1].group("func")] if at else []
    who_pid = _COMM_PID.match(text(lines[cue[0]])) if cue else None
    return _splat("lockdep", bug_type, _LOCKDEP_TITLES[bug_type], guilty([*named, *trace]), lines, i, end,
                  pid=int(who_pid.group(2)) if who_pid else None, stacks={"call": trace})


# refcount_t, lib/refcount.c refcount_warn_saturate: WARN_ONCE(1,
# "refcount_t: %s.\n") prints the message, then "WARNING: CPU: ... at
# lib/refcount.c:...", the registers and the call trace.
_REFCOUNT = re.compile(r"^refcount_t: (?P<type>[^.]+)\.")


def _refcount(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = _rip_then_trace(lines, i, end)
    return _splat("refcount", m.group("type"), "WARNING: refcount bug", who, lines, i, end, detail=text(lines[i]),
                  stacks={"call": trace})


# list debugging, lib/list_debug.c: "list_add corruption. ..." / "list_del
# corruption, %px->next is NULL" and the like through CHECK_DATA_CORRUPTION:
# then BUG() ("kernel BUG at lib/list_debug.c:%d!") with
# CONFIG_BUG_ON_DATA_CORRUPTION, else a WARNING there.
_LIST = re.compile(r"^(?P<type>list_(?:add|del) corruption)[.,] ")


def _list(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = _rip_then_trace(lines, i, end)
    return _splat("list", m.group("type"), "BUG: corrupted list", who, lines, i, end, detail=text(lines[i]),
                  stacks={"call": trace})


# kernel/sched/core.c: __might_resched's "BUG: sleeping function called from
# invalid context at %s:%d" (CONFIG_DEBUG_ATOMIC_SLEEP), and __schedule_bug's
# "BUG: scheduling while atomic: %s/%d/0x%08x", which panics with
# panic_on_warn before its own dump_stack(): the panic's stack is its trace.
_MIGHT_SLEEP = re.compile(r"^BUG: sleeping function called from invalid context at (?P<where>\S+)")
_SCHED_ATOMIC = re.compile(r"^BUG: scheduling while atomic: (?P<task>\S+?)/(?P<pid>\d+)/0x")


def _might_sleep(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    trace = _call_trace(lines, i, end)
    pid = None
    if i + 1 < end and (p := re.search(r"\bpid: (\d+), name:", text(lines[i + 1]))):
        pid = int(p.group(1))
    return _splat("atomic-sleep", "sleeping function called from invalid context",
                  "BUG: sleeping function called from invalid context", guilty(trace), lines, i, end,
                  pid=pid, detail=m.group("where"), stacks={"call": trace})


def _sched_atomic(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    trace = _call_trace(lines, i, end)
    return _splat("sched-atomic", "scheduling while atomic", "BUG: scheduling while atomic", guilty(trace),
                  lines, i, end, pid=int(m.group("pid")), stacks={"call": trace})


# RCU, kernel/rcu/tree_stall.h (pr_fmt "rcu: "): "INFO: %s self-detected
# stall on CPU" and "INFO: %s detected stalls on CPUs/tasks:" (and the
# expedited form). The stalled code is the task context the timer interrupt
# or the backtrace NMI interrupted: the RIP that follows "<TASK>".
_RCU = re.compile(r"INFO: (?P<flavor>rcu_\w+) (?P<type>self-detected stall on CPU|detected stalls on CPUs/tasks|"
                  r"detected expedited stalls on CPUs/tasks)")
_RCU_SKIP = ("rcu_", "__rcu_", "update_process_times", "tick_", "hrtimer_", "__hrtimer_", "__sysvec_",
             "sysvec_", "asm_sysvec_", "irq_exit", "__irq_exit", "handle_irq", "native_safe_halt", "default_idle",
             "cpu_idle", "do_idle", "delay_tsc", "__const_udelay", "io_serial_", "serial8250_", "console_",
             "wait_for_lsr", "nmi_", "default_do_nmi", "exc_nmi", "asm_exc_nmi", "end_repeat_nmi")


def _rcu(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    task_rip = ""
    after_task = False
    for j in range(i, end):
        t = text(lines[j])
        if re.match(r"^\s*<TASK>", t):
            after_task = True
            continue
        r = _RIP.match(t)
        if r and after_task:
            task_rip = r.group("func")
            break
    rips = [r.group("func") for _, r in _rips(lines, i, end)]
    trace = _call_trace(lines, i, end)
    who = guilty([task_rip] if task_rip else [], _RCU_SKIP) or guilty([*rips, *trace], _RCU_SKIP)
    return _splat("rcu-stall", m.group("type"), "INFO: rcu detected stall", who, lines, i, end,
                  stacks={"call": trace})


# arch/x86/kernel/traps.c handle_stack_overflow: "BUG: %s stack guard page was
# hit at %p (stack is %p..%p)", then die("stack guard page"); exc_double_fault:
# "PANIC: double fault, error_code: 0x%lx" (pr_fmt "traps: " in 6.12), then
# die("double fault").
_STACK_GUARD = re.compile(r"BUG: (?P<stack>\w+) stack guard page was hit at")
_DOUBLE_FAULT = re.compile(r"PANIC: double fault, error_code: 0x[0-9a-f]+")


def _stack_guard(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = _rip_then_trace(lines, i, end)
    return _splat("stack-overflow", f"{m.group('stack')} stack guard page was hit", "BUG: stack guard page was hit",
                  who, lines, i, end, stacks={"call": trace})


def _double_fault(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = _rip_then_trace(lines, i, end)
    return _splat("double-fault", "double fault", "PANIC: double fault", who, lines, i, end,
                  stacks={"call": trace})


# arch/x86/kernel/dumpstack.c __die_header: "%s: %04lx [#%d]..." where %s is
# die()'s string ("general protection fault, probably for non-canonical
# address 0x...", "divide error", "invalid opcode", "stack guard page",
# "double fault", "Oops" for a page fault); f9f62a877da1
# ("x86/dumpstack: Use uniform "Oops: " prefix for die() messages", v6.10)
# puts "Oops: " before it.
_DIE = re.compile(r"^(?:Oops: )?(?P<what>[A-Za-z][^:\[]*?): [0-9a-f]{4} \[#\d+\]")
_DIE_KINDS = (("general protection fault", "gpf", "general protection fault"),
              ("divide error", "divide-error", "divide error"),
              ("invalid opcode", "invalid-opcode", "invalid opcode"),
              ("stack guard page", "stack-overflow", "BUG: stack guard page was hit"),
              ("double fault", "double-fault", "PANIC: double fault"))


def _die(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    what = m.group("what")
    kind, bug_type, headline = "oops", what, f"Oops: {what}"
    for prefix, k, h in _DIE_KINDS:
        if what.startswith(prefix):
            kind, bug_type, headline = k, prefix, h  # the prefix: GPF's text carries an address
            break
    who, trace = _rip_then_trace(lines, i, end)
    return _splat(kind, bug_type, headline, who, lines, i, end, stacks={"call": trace})


# arch/x86/mm/fault.c page_fault_oops: "BUG: kernel NULL pointer dereference,
# address: %px" or "BUG: unable to handle page fault for address: %px", then
# die("Oops").
_NULL = re.compile(r"^BUG: kernel NULL pointer dereference, address:")
_PAGE_FAULT = re.compile(r"^BUG: unable to handle page fault for address:")


def _null(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = _rip_then_trace(lines, i, end)
    return _splat("null-deref", "kernel NULL pointer dereference", "BUG: kernel NULL pointer dereference", who,
                  lines, i, end, stacks={"call": trace})


def _page_fault(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = _rip_then_trace(lines, i, end)
    return _splat("page-fault", "unable to handle page fault", "BUG: unable to handle page fault", who, lines, i, end,
                  stacks={"call": trace})


# lib/bug.c report_bug: BUG() prints "kernel BUG at %s:%u!" (then die("invalid
# opcode")); WARN() goes to kernel/panic.c __warn: "WARNING: CPU: %d PID: %d
# at %s:%d %pS" (or "at %pS" without the file).
_BUG = re.compile(r"^kernel BUG at (?P<where>\S+?):\d+!")
_WARN = re.compile(r"^WARNING: CPU: \d+ PID: (?P<pid>\d+) at (?:\S+:\d+ )?(?P<func>[A-Za-z_.$][\w.$]*)\+0x")


def _bug(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = _rip_then_trace(lines, i, end)
    return _splat("bug", "kernel BUG", "kernel BUG", who, lines, i, end, detail=m.group("where"),
                  stacks={"call": trace})


def _warn(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    trace = _call_trace(lines, i, end)
    who = guilty([m.group("func")]) or _rip_then_trace(lines, i, end)[0]
    return _splat("warn", "WARNING", "WARNING", who, lines, i, end, pid=int(m.group("pid")),
                  stacks={"call": trace})


# kernel/watchdog.c (pr_fmt "watchdog: "): "BUG: soft lockup - CPU#%d stuck
# for %us! [%s:%d]"; kernel/watchdog_hld.c: "Watchdog detected hard LOCKUP on
# cpu %d"; kernel/hung_task.c: "INFO: task %s:%d blocked for more than %ld
# seconds."
_SOFT = re.compile(r"BUG: soft lockup - CPU#\d+ stuck for \d+s! \[(?P<task>.+):(?P<pid>\d+)\]")
_HARD = re.compile(r"Watchdog detected hard LOCKUP on cpu \d+")
_HUNG = re.compile(r"^INFO: task (?P<task>.+):(?P<pid>\d+) blocked for more than \d+ seconds")


def _soft(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = _rip_then_trace(lines, i, end)
    return _splat("soft-lockup", "soft lockup", "BUG: soft lockup", who, lines, i, end, pid=int(m.group("pid")),
                  stacks={"call": trace})


def _hard(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    who, trace = _rip_then_trace(lines, i, end)
    return _splat("hard-lockup", "hard LOCKUP", "watchdog: hard LOCKUP", who, lines, i, end, stacks={"call": trace})


def _hung(m: re.Match, lines: list[str], i: int, end: int) -> Splat:
    # khungtaskd prints it about another task: no pid ties it to the panic
    # (which khungtaskd calls), and the span's "CPU: ... PID:" line is that
    # panic's, so pid stays None.
    trace = _call_trace(lines, i, end)
    return Splat(kind="hung-task", bug_type="task blocked", headline="INFO: task hung",
                 title=f"INFO: task hung in {guilty(trace) or 'unknown'}", guilty=guilty(trace),
                 header=text(lines[i]).strip(), line=i, pid=None, detail=f"{m.group('task')}:{m.group('pid')}",
                 stacks={"call": trace})


_DIE_PARTS = ("gpf", "divide-error", "invalid-opcode", "stack-overflow", "double-fault", "oops")
FORMATS: tuple[_Format, ...] = (
    _Format("kasan", _KASAN, _kasan, absorbs=("null-deref", "page-fault", "gpf", "oops")),
    _Format("kfence", _KFENCE, _kfence, absorbs=("null-deref", "page-fault", "oops")),
    _Format("ubsan", _UBSAN, _ubsan),
    _Format("lockdep", _LOCKDEP, _lockdep),
    _Format("refcount", _REFCOUNT, _refcount, absorbs=("warn",)),
    _Format("list", _LIST, _list, absorbs=("bug", "warn", *_DIE_PARTS)),
    _Format("atomic-sleep", _MIGHT_SLEEP, _might_sleep),
    _Format("sched-atomic", _SCHED_ATOMIC, _sched_atomic),
    _Format("rcu-stall", _RCU, _rcu),
    _Format("stack-overflow", _STACK_GUARD, _stack_guard, absorbs=("double-fault", *_DIE_PARTS)),
    _Format("double-fault", _DOUBLE_FAULT, _double_fault, absorbs=_DIE_PARTS),
    _Format("null-deref", _NULL, _null, absorbs=_DIE_PARTS),
    _Format("page-fault", _PAGE_FAULT, _page_fault, absorbs=_DIE_PARTS),
    _Format("bug", _BUG, _bug, absorbs=_DIE_PARTS),
    _Format("warn", _WARN, _warn),
    _Format("soft-lockup", _SOFT, _soft),
    _Format("hard-lockup", _HARD, _hard),
    _Format("hung-task", _HUNG, _hung),
    _Format("die", _DIE, _die),
)
#: How far after its opener a header it absorbs may come (the die() header
#: follows "kernel BUG at" at once and a NULL dereference after "#PF:" lines).
_ABSORB_WINDOW = 12


def _header(t: str) -> tuple[_Format, re.Match] | None:
    if "Kernel panic - not syncing" in t:
        return None
    for fmt in FORMATS:
        m = fmt.header.search(t)
        if m:
            return fmt, m
    return None


def _kind(fmt: _Format, m: re.Match) -> str:
    if fmt.kind != "die":
        return fmt.kind
    what = m.group("what")
    return next((k for prefix, k, _ in _DIE_KINDS if what.startswith(prefix)), "oops")


def find_reports(lines: Sequence[str]) -> list[Splat]:
    """Every report in ``lines``, in the order the kernel printed them."""
    lines = list(lines)
    opened: list[tuple[int, _Format, re.Match]] = []
    for i, line in enumerate(lines):
        hit = _header(text(line))
        if hit is None:
            continue
        fmt, m = hit
        if opened:
            j, prev, _ = opened[-1]
            if _kind(fmt, m) in prev.absorbs and i - j <= _ABSORB_WINDOW:
                continue
        opened.append((i, fmt, m))
    out = []
    for n, (i, fmt, m) in enumerate(opened):
        end = opened[n + 1][0] if n + 1 < len(opened) else len(lines)
        out.append(fmt.parse(m, lines, i, end))
    return out


def _panic_pid(lines: Sequence[str]) -> int | None:
    """The task that called panic(): the "CPU: ... PID: %d" of the stack
    panic() dumps right after its "Kernel panic - not syncing" line (it dumps
    none after an oops, or without CONFIG_DEBUG_BUGVERBOSE: None)."""
    for i in range(len(lines) - 1, -1, -1):
        if "Kernel panic - not syncing" in lines[i]:
            for j in range(i + 1, min(i + 4, len(lines))):
                m = _CONTEXT.search(text(lines[j]))
                if m:
                    return int(m.group(1))
            return None
    return None


def culprit_report(lines: Sequence[str]) -> Splat | None:
    """The report that explains the crash, or None when none does.

    The crash is one task's incident: a sanitizer's report, the oops it
    leads to and the scheduler's complaint after it come from the task that
    then panics, and the incident is named by its first report, as syzkaller
    names it. The task is the one panic() names, else (an oops that went
    straight to kdump, or a panic after an oops) the one the last report is
    about. Reports about other tasks (a warning at boot) are other
    incidents: a crash with no report of its own (sysrq-c, an NMI) gets none
    of them. A report that names no printing task (a hung task, reported by
    khungtaskd about another) stands for the crash when it came last."""
    reports = find_reports(lines)
    if not reports:
        return None
    last = reports[-1]
    pid = _panic_pid(lines)
    if pid is None:
        pid = last.pid
    if pid is None:
        return last
    mine = [r for r in reports if r.pid == pid]
    if mine:
        return mine[0]
    return last if last.pid is None else None
