"""The crash-taxonomy classes kdebug_splat.ko provokes, what the kernel must
then print, and one capture of each (shared by the vm tests and by
tests/fixtures/splats/record.py, which recorded the console fixtures).

The truth for each class is independent of the classifier: the guilty
function is the one the module does the deed in (kdebug_splat_<class>), the
access is what its C code does (an int read, a one-byte write), and the
report's header is matched in the console text with the kernel's own format
(the source file named beside each class).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: Every capture: WARN-class reports (KASAN, KFENCE, UBSAN, refcount,
#: scheduling while atomic) panic with panic_on_warn, oopses with
#: panic_on_oops, an RCU stall with panic_on_rcu_stall (kdebug capture's
#: --panic-on, written as sysctls before the command runs).
PANIC_ON = ("oops", "warn", "lockup")
GUEST_KO = "/lib/kdebug/kdebug_splat.ko"
#: The marker line the module prints first (pr_emerg), where a fixture starts.
MARKER = re.compile(r"kdebug_splat: (\S+)\s*$")


@dataclass(frozen=True)
class SplatClass:
    name: str  # the module's class= word
    kind: str  # kdebug.report.taxonomy kind
    needs: tuple[str, ...]  # kernel options the class needs (all of them)
    header: str  # regex of the kernel's own header line, from its source
    title: str  # the title, "{0}" standing for the header's first group (the kernel's word)
    function: str  # where the module does it: the guilty frame
    access: tuple[str, int | None] | None = None  # (op, size) by construction
    append: tuple[str, ...] = ()  # more boot parameters
    setup: str = ""  # shell line before insmod

    @property
    def run(self) -> str:
        # Console loglevel 8 for the report itself: kdebug's guests print only
        # KERN_EMERG on the console, and these reports are KERN_ERR/WARNING.
        pre = f"{self.setup}; " if self.setup else ""
        return f"{pre}echo 8 > /proc/sys/kernel/printk; insmod {GUEST_KO} class={self.name}"


CLASSES = {c.name: c for c in [
    # mm/kasan/report.c: "BUG: KASAN: %s in %pS"; "use-after-free" up to v6.2, "slab-use-after-free" since v6.3
    SplatClass("uaf", "kasan", ("KASAN",), r"BUG: KASAN: ((?:slab-)?use-after-free) in kdebug_splat_uaf\+",
               "KASAN: {0} Read in kdebug_splat_uaf", "kdebug_splat_uaf", ("Read", 4)),
    SplatClass("oob", "kasan", ("KASAN",), r"BUG: KASAN: (slab-out-of-bounds) in kdebug_splat_oob\+",
               "KASAN: {0} Write in kdebug_splat_oob", "kdebug_splat_oob", ("Write", 1)),
    SplatClass("double-free", "kasan", ("KASAN",), r"BUG: KASAN: (double-free) in \S+\+",
               "KASAN: {0} in kdebug_splat_double_free", "kdebug_splat_double_free", ("Free", None)),
    # mm/kfence/report.c: "BUG: KFENCE: use-after-free %s in %pS"
    SplatClass("kfence", "kfence", ("KFENCE",), r"BUG: KFENCE: (use-after-free read) in kdebug_splat_kfence\+",
               "KFENCE: {0} in kdebug_splat_kfence", "kdebug_splat_kfence", ("read", None),
               setup="echo 100 > /sys/module/kfence/parameters/sample_interval"),
    # kernel/locking/lockdep.c print_circular_bug_header / print_deadlock_bug / print_unlock_imbalance_bug
    SplatClass("abba", "lockdep", ("PROVE_LOCKING",), r"WARNING: (possible circular locking dependency) detected",
               "possible deadlock in kdebug_splat_abba", "kdebug_splat_abba"),
    SplatClass("recursive", "lockdep", ("PROVE_LOCKING",), r"WARNING: (possible recursive locking) detected",
               "possible deadlock in kdebug_splat_recursive", "kdebug_splat_recursive"),
    SplatClass("unlock", "lockdep", ("PROVE_LOCKING",), r"WARNING: (bad unlock balance) detected!",
               "WARNING: bad unlock balance in kdebug_splat_unlock", "kdebug_splat_unlock"),
    # lib/ubsan.c ubsan_prologue: "UBSAN: %s in %s:%d:%d"
    SplatClass("shift", "ubsan", ("UBSAN_SHIFT",), r"UBSAN: (shift-out-of-bounds) in \S+kdebug_splat\.c:",
               "UBSAN: {0} in kdebug_splat_shift", "kdebug_splat_shift"),
    SplatClass("index", "ubsan", ("UBSAN_BOUNDS",), r"UBSAN: (array-index-out-of-bounds) in \S+kdebug_splat\.c:",
               "UBSAN: {0} in kdebug_splat_index", "kdebug_splat_index"),
    # lib/refcount.c refcount_warn_saturate: "refcount_t: underflow; use-after-free."
    SplatClass("refcount", "refcount", (), r"refcount_t: (underflow; use-after-free)\.",
               "WARNING: refcount bug in kdebug_splat_refcount", "kdebug_splat_refcount"),
    # lib/list_debug.c: "list_del corruption. next->prev should be %px, but was %px. (next=%px)"
    SplatClass("list", "list", ("DEBUG_LIST",), r"(list_del corruption)\. next->prev should be",
               "BUG: corrupted list in kdebug_splat_list", "kdebug_splat_list"),
    # kernel/sched/core.c __might_resched (DEBUG_ATOMIC_SLEEP), else __schedule_bug
    SplatClass("atomic-sleep", "atomic-sleep", ("DEBUG_ATOMIC_SLEEP",),
               r"BUG: (sleeping function called from invalid context) at ",
               "BUG: sleeping function called from invalid context in kdebug_splat_atomic_sleep",
               "kdebug_splat_atomic_sleep"),
    # arch/x86/kernel/dumpstack.c __die_header: "%s: %04lx [#%d]" ("Oops: " first since v6.10)
    SplatClass("gpf", "gpf", (), r"(general protection fault), probably for non-canonical address",
               "general protection fault in kdebug_splat_gpf", "kdebug_splat_gpf"),
    SplatClass("div", "divide-error", (), r"(divide error): 0000 \[#1\]", "divide error in kdebug_splat_div",
               "kdebug_splat_div"),
    SplatClass("ud2", "invalid-opcode", (), r"(invalid opcode): 0000 \[#1\]", "invalid opcode in kdebug_splat_ud2",
               "kdebug_splat_ud2"),
    # arch/x86/kernel/traps.c handle_stack_overflow: "BUG: %s stack guard page was hit at %p (stack is %p..%p)"
    SplatClass("stack-overflow", "stack-overflow", ("VMAP_STACK",), r"BUG: (TASK) stack guard page was hit at",
               "BUG: stack guard page was hit in kdebug_splat_stack_overflow", "kdebug_splat_stack_overflow"),
    # kernel/rcu/tree_stall.h print_cpu_stall: "INFO: %s self-detected stall on CPU" (pr_fmt "rcu: ")
    SplatClass("rcu-stall", "rcu-stall", (), r"INFO: (rcu_\w+) self-detected stall on CPU",
               "INFO: rcu detected stall in kdebug_splat_rcu_stall", "kdebug_splat_rcu_stall",
               append=("rcupdate.rcu_cpu_stall_timeout=3",)),
]}
#: Where DEBUG_ATOMIC_SLEEP is off the scheduler's own check names it.
SCHED_ATOMIC = SplatClass("atomic-sleep", "sched-atomic", (), r"BUG: (scheduling while atomic): ",
                          "BUG: scheduling while atomic in kdebug_splat_atomic_sleep", "kdebug_splat_atomic_sleep")


def supported(cls: SplatClass, config) -> SplatClass | None:
    """The class as this kernel (a kdebug.kconfig.KConfig) shows it, or None."""
    if cls.name == "atomic-sleep" and not config.builtin("DEBUG_ATOMIC_SLEEP"):
        return SCHED_ATOMIC if config.builtin("PREEMPT_COUNT") else None
    if all(config.builtin(o) for o in cls.needs):
        return cls
    return None


def expected_title(cls: SplatClass, console: str) -> str:
    """The title the class must get, its bug word taken from the kernel's own header."""
    m = re.search(cls.header, console)
    assert m, f"the console does not show the kernel's {cls.kind} report ({cls.header})"
    return cls.title.format(m.group(1))


def capture_splat(cls: SplatClass, out: Path, *, tree: Path | None = None, release: str | None = None):
    """Boot, load kdebug_splat.ko with the class, take the QEMU dump of the
    panic (no kexec: a KASAN capture kernel would need a larger crashkernel)."""
    from kdebug.capture.api import capture
    from kdebug.capture.module import splat_module
    from kdebug.capture.plan import CaptureOptions, Timeouts
    from kdebug.kernel import find_kernel
    from kdebug.plan.prepare import LaunchOptions

    kernel = find_kernel(None, None, tree, release)
    ko = splat_module(kernel)
    base = LaunchOptions(tree=tree, release=release, extra_files={GUEST_KO.lstrip("/"): ko}, append=[*cls.append])
    return capture(base, CaptureOptions(method="qemu", run=cls.run, out=out, panic_on=PANIC_ON,
                                        timeouts=Timeouts(panic=90)))


def crash_loop(cls: SplatClass, out: Path, *, tree: Path | None = None, release: str | None = None):
    """The same through the command a developer types: ``kdebug crash-loop
    --add kdebug_splat.ko:... --run 'insmod ...' --panic-on ...`` (drgn only).
    Returns the console text and the Report read back from report.json."""
    import json
    import subprocess
    import sys

    from kdebug.capture.module import splat_module
    from kdebug.kernel import find_kernel
    from kdebug.report.load import report_from_dict

    ko = splat_module(find_kernel(None, None, tree, release))
    where = ["--tree", str(tree)] if tree is not None else ["--release", str(release)]
    argv = [sys.executable, "-m", "kdebug.cli.main", "crash-loop", *where, "--add", f"{ko}:{GUEST_KO}",
            "--run", cls.run, "--panic-on", ",".join(PANIC_ON), "--no-crash", "--out", str(out),
            *(a for x in cls.append for a in ("--append", x))]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    console = (out / "console-main.log").read_text(errors="replace")
    return console, report_from_dict(json.loads((out / "report.json").read_text()))


def fixture_text(console: str) -> str:
    """A console log from the module's marker line on (boot messages dropped)."""
    lines = console.splitlines()
    start = next((i for i, ln in enumerate(lines) if MARKER.search(ln)), 0)
    return "\n".join(lines[start:]) + "\n"
