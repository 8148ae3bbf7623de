"""Which frames are never to blame (pure).

A report's title, a panic's culprit and the engines' cross-check all skip
the same frames: generic code that reports, checks or carries out a bug on
someone else's behalf. Each group below says why it is never guilty; the
report titles skip them all (:func:`guilty`), a panic backtrace's culprit
and the cross-check skip the panic machinery (:data:`MACHINERY`), a blocked
task's culprit skips where it waits (:data:`SCHEDULER`). The lists were
learned from syzkaller's, written for the kernels kdebug runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from kdebug.model import FrameRecord
from kdebug.report.logtext import call_trace, plain, rips


def _words(s: str) -> frozenset[str]:
    return frozenset(s.split())


#: The panic, die and WARN path, and what it calls on the way out: the
#: function that crashed is below them, they only report it. The trap
#: handlers (exc_*) and the page-fault path run because the guilty code
#: faulted; kexec, pvpanic and the notifier chain take the dump; the
#: port-I/O accessors are where QEMU stops a vCPU that writes pvpanic's
#: event (QEMU 10 pauses it right at the OUT); do_exit and make_task_dead
#: bury the task an oops killed.
MACHINERY = _words("""
panic vpanic nmi_panic check_panic_on_warn __warn warn_slowpath_fmt __warn_printk report_bug handle_bug
dump_stack dump_stack_lvl show_stack show_trace_log_lvl show_regs __show_regs die __die die_addr oops_end
do_error_trap do_trap do_int3 exc_invalid_op asm_exc_invalid_op exc_general_protection
asm_exc_general_protection exc_divide_error asm_exc_divide_error exc_double_fault asm_exc_double_fault
handle_stack_overflow exc_page_fault asm_exc_page_fault page_fault_oops kernelmode_fixup_or_oops
__bad_area_nosemaphore bad_area_nosemaphore do_user_addr_fault handle_page_fault
exc_nmi asm_exc_nmi default_do_nmi end_repeat_nmi
printk _printk vprintk vprintk_emit vprintk_default print_report print_address_description
pvpanic_send_event pvpanic_panic_notify notifier_call_chain atomic_notifier_call_chain
__outb outb iowrite8 iowrite16 iowrite32 __raw_writeb
__crash_kexec crash_kexec crash_setup_regs machine_crash_shutdown native_machine_crash_shutdown machine_kexec
panic_smp_self_stop nmi_panic_self_stop crash_nmi_callback
make_task_dead rewind_stack_and_make_dead do_exit
""")

#: Where a task sleeps or blocks, whoever put it there: a hung task's
#: culprit is the caller that waited (the lock it waits for is someone
#: else's bug, or its own caller's).
SCHEDULER = _words("""
schedule __schedule schedule_debug __schedule_bug __schedule_loop schedule_timeout
schedule_timeout_uninterruptible schedule_timeout_interruptible schedule_timeout_killable
schedule_preempt_disabled preempt_schedule preempt_schedule_common schedule_hrtimeout_range_clock
schedule_hrtimeout_range io_schedule io_schedule_timeout msleep msleep_interruptible ssleep
usleep_range usleep_range_state wait_for_completion __wait_for_common wait_for_common do_wait_for_common
context_switch __switch_to __switch_to_asm
__mutex_lock mutex_lock __mutex_lock_slowpath rwsem_down_read_slowpath rwsem_down_write_slowpath
down_read down_write
""")

#: The string and user-copy helpers: a bad pointer they were handed is the caller's.
_MEMORY = _words("""
memcpy memmove memset memcmp memchr strcpy strncpy strscpy strlcpy strlen strnlen strcmp strncmp strchr
__memcpy __memmove __memset copy_from_user copy_to_user _copy_from_user _copy_to_user
""")

#: The allocator: an object it hands out or takes back is the caller's.
_ALLOCATOR = _words("""
kmalloc __kmalloc kmalloc_trace kmalloc_node __kmalloc_node kzalloc kcalloc krealloc kvmalloc kvmalloc_node
kfree kvfree kfree_sensitive vmalloc vzalloc vfree kmem_cache_alloc kmem_cache_alloc_node
kmem_cache_alloc_lru kmem_cache_free __kmem_cache_free __kmem_cache_alloc_node ___slab_alloc __slab_alloc
__slab_free slab_free slab_alloc_node slab_free_freelist_hook alloc_pages __alloc_pages
""")

#: Lock primitives, lockdep and the checkers of atomic context and of
#: refcounts: they detect a misuse their caller made.
_CHECKERS = _words("""
mutex_lock_nested mutex_lock_interruptible mutex_lock_killable mutex_trylock mutex_unlock
__mutex_unlock_slowpath down up down_read_nested down_write_nested down_trylock down_read_trylock
down_write_trylock up_read up_write do_raw_spin_lock do_raw_spin_unlock queued_spin_lock_slowpath
osq_lock osq_unlock lock_acquire lock_release lock_acquired lock_contended __lock_acquire __lock_release
refcount_warn_saturate kref_put kref_get
__might_resched __might_sleep __might_fault might_sleep might_fault __cant_sleep
""")

#: Every name a report's title never blames.
SKIP_EXACT = MACHINERY | SCHEDULER | _MEMORY | _ALLOCATOR | _CHECKERS

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

#: Name prefixes never guilty of an RCU stall, beside the above: the timer
#: interrupt and tick that noticed it, the idle loop, the delay loops and the
#: serial console the stall report itself spins in, and the NMI that dumped
#: another CPU's stack. The stalled code is what they interrupted.
STALL_CONTEXT = ("rcu_", "__rcu_", "update_process_times", "tick_", "hrtimer_", "__hrtimer_", "__sysvec_",
                 "sysvec_", "asm_sysvec_", "irq_exit", "__irq_exit", "handle_irq", "native_safe_halt",
                 "default_idle", "cpu_idle", "do_idle", "delay_tsc", "__const_udelay", "io_serial_", "serial8250_",
                 "console_", "wait_for_lsr", "nmi_", "default_do_nmi", "exc_nmi", "asm_exc_nmi", "end_repeat_nmi")


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


def rip_then_trace(lines: Sequence[str], start: int, end: int,
                   extra: tuple[str, ...] = ()) -> tuple[str, list[FrameRecord]]:
    """The faulting function (the span's first RIP line) unless it is a
    generic helper, else the first guilty frame of its call trace; and that trace."""
    trace = call_trace(lines, start, end)
    found = rips(lines, start, end)
    names = [found[0][1].group("func")] if found else []
    return guilty([*names, *trace], extra), trace


#: The allocation path of an out-of-memory panic, by name, so that a report
#: with debug info (drgn's frames) and one without (the log's Call Trace)
#: skip the same frames: the OOM killer and its panic check, the page and
#: slab allocators and their reclaim, the page-fault path that allocated for
#: a user access, and the user-copy and iov_iter helpers that faulted. An
#: out-of-memory panic blames who asked for memory (read_zero, a driver's
#: probe), not who looked for it. Compared without leading underscores and
#: by prefix, so compiler suffixes (.cold, .constprop.0) and the "_noprof"
#: names of v6.10's memory allocation profiling (__alloc_pages_noprof,
#: kmalloc_noprof, as the 6.12 kernel prints them) are covered too.
OOM_PATH = (
    # mm/oom_kill.c
    "out_of_memory", "pagefault_out_of_memory", "oom_", "check_panic_on_oom", "dump_header",
    # mm/page_alloc.c, mm/mempolicy.c, mm/vmscan.c
    "alloc_page", "alloc_frozen_pages", "folio_alloc", "vma_alloc_folio", "get_free_page", "get_zeroed_page",
    "get_page_from_freelist", "rmqueue", "warn_alloc", "try_to_free_pages", "do_try_to_free_pages",
    "perform_reclaim", "shrink_", "alloc_contig_", "alloc_huge_page", "alloc_hugetlb_folio", "alloc_buddy_",
    # mm/slub.c, mm/slab_common.c, mm/vmalloc.c
    "kmalloc", "kzalloc", "kcalloc", "krealloc", "kvmalloc", "kvzalloc", "kmem_cache_alloc", "slab_alloc",
    "allocate_slab", "new_slab", "alloc_slab_page", "cache_alloc", "vmalloc", "vzalloc", "vmap_",
    "alloc_vmap_area",
    # mm/filemap.c, mm/readahead.c: the page cache allocating for a read or a fault
    "filemap_alloc_folio", "filemap_get_folio", "filemap_get_pages", "filemap_fault", "pagecache_get_page",
    "page_cache_ra_", "page_cache_sync_ra", "page_cache_async_ra", "ondemand_readahead", "do_page_cache_ra",
    "read_pages",
    # mm/memory.c, mm/huge_memory.c, arch/x86/mm/fault.c: the page-fault path
    "handle_mm_fault", "handle_pte_fault", "do_anonymous_page", "do_fault", "do_read_fault", "do_cow_fault",
    "do_shared_fault", "do_wp_page", "wp_page_copy", "do_swap_page", "do_huge_pmd_", "do_user_addr_fault",
    "handle_page_fault", "exc_page_fault", "asm_exc_page_fault", "fault_in_",
    # arch/x86/lib, lib/iov_iter.c, lib/usercopy.c: the user access that faulted
    "copy_to_user", "copy_from_user", "copy_user_", "copy_mc_", "clear_user", "rep_movs_alternative",
    "rep_stos_alternative", "copy_page_to_iter", "copy_page_from_iter", "copy_to_iter", "copy_from_iter",
    "iov_iter_", "strncpy_from_user", "get_user_pages", "gup_",
)


def allocating(function: str) -> bool:
    """Whether ``function`` is on :data:`OOM_PATH`, never an OOM panic's culprit."""
    return plain(function).lstrip("_").startswith(OOM_PATH)
