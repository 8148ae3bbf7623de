"""The Report record (pure): what ``kdebug postmortem`` found in one vmcore.

Its JSON form is versioned (SCHEMA_VERSION) and described by
kdebug/report/schema/report-v1.json; bump the major version when a field
changes meaning or disappears, the minor one when fields are added.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from kdebug.model import FrameRecord, ModuleRecord, PrintkRecord, TaskRecord

SCHEMA_VERSION = "1.8"  # 1.1: log_source; 1.2: kind, snapshot, dump, tasks.complete; 1.3: engines[].unsupported;
# 1.4: splat; 1.5: tainting_modules; 1.6: tier, nodebug; 1.7: panic.reason kasan, kfence, ubsan, lockdep,
# list-corruption, atomic-sleep, rcu-stall, stack-overflow
# 1.8: start (cold or warm: a guest restored from a saved state, kdebug.warm)

#: Classified panic reasons. A crash the kernel explained with a report gets
#: its kind's (kdebug.report.taxonomy.KINDS, the one mapping from kind to
#: reason); sysrq, nmi and other name crashes without one.
REASONS = ("sysrq", "null-deref", "bug", "warn", "hung-task", "soft-lockup", "hard-lockup",
           "oom", "nmi", "oops", "other",
           # 1.7: the detectors that used to hide behind the switch they
           # panic through ("warn") or the BUG() they end in ("bug"), or
           # fell to "other"
           "kasan", "kfence", "ubsan", "lockdep", "list-corruption", "atomic-sleep", "rcu-stall",
           "stack-overflow")


@dataclass
class SystemInfo:
    release: str
    version: str = ""
    build_id: str | None = None
    arch: str = ""
    hostname: str = ""
    cpus: int = 0  # possible CPUs
    memory_kb: int = 0
    uptime_s: float | None = None
    crash_time: str | None = None  # ISO 8601 UTC, from the kernel's wall clock
    taint: str = ""  # letters, "" when not tainted
    cmdline: str = ""
    kaslr_offset: int | None = None
    vmcore: str = ""
    vmcore_format: str = ""
    vmlinux: str = ""


@dataclass
class PanicInfo:
    message: str
    reason: str  # one of REASONS
    cpu: int | None
    task: TaskRecord | None
    backtrace: list[FrameRecord] = field(default_factory=list)


@dataclass
class Access:
    """The bad access a memory-safety report (KASAN, KFENCE) describes."""

    op: str  # "Read" or "Write" (KASAN), "read" or "write" (KFENCE), "Free" (a bad free)
    size: int | None = None
    address: int | None = None  # None where the kernel prints a hashed %p (KFENCE)
    task: str = ""  # "comm/pid", as the report names it


@dataclass
class Splat:
    """One bug report the kernel printed (KASAN, KFENCE, UBSAN, lockdep, a
    refcount_t or list-debug warning, an oops, ...), named by
    kdebug.report.taxonomy."""

    kind: str  # the detector, one of kdebug.report.taxonomy.KINDS
    bug_type: str  # the detector's own words for the bug ("slab-use-after-free", "shift-out-of-bounds")
    headline: str  # the title without the function ("KASAN: slab-use-after-free Read")
    title: str  # "KASAN: slab-use-after-free Read in foo"
    guilty: str  # "foo": the first frame that is not a generic helper ("" when none is)
    header: str  # the line that opened the report, without its timestamp
    line: int  # its index in the log it was found in
    pid: int | None = None  # the task the report is about
    detail: str = ""  # the line that says what was wrong, where the report has one
    access: Access | None = None
    #: "access" (KASAN, KFENCE: where the bad access happened), "alloc" and
    #: "free" (where the object was allocated and freed), or "call" (the
    #: report's call trace). Frames come from the log's text; pc, file and
    #: line are filled in where the dump's debug info knows the function.
    stacks: dict[str, list[FrameRecord]] = field(default_factory=dict)


@dataclass
class TaintingModule:
    """A loaded module that taints the kernel (out-of-tree, unsigned,
    proprietary, ...), and whether the report could read its debug info."""

    name: str
    taints: str  # its letters, as /proc/modules prints them ("OE")
    build_id: str  # the loaded module's GNU build-id, from the dump ("" when unknown)
    debug_file: str  # the file its debug info was read from ("": none, frames without file:line)


@dataclass
class CpuBacktrace:
    cpu: int
    task: TaskRecord | None
    backtrace: list[FrameRecord] = field(default_factory=list)
    error: str = ""


@dataclass
class BlockedTask:
    task: TaskRecord
    backtrace: list[FrameRecord] = field(default_factory=list)


@dataclass
class TaskSummary:
    total: int
    by_state: dict[str, int]
    blocked: list[BlockedTask] = field(default_factory=list)  # D state, with stacks
    top_memory: list[TaskRecord] = field(default_factory=list)
    #: False when a read outside the dump cut the task walk short: ``total``
    #: and ``by_state`` then count only the tasks read before it.
    complete: bool = True


@dataclass
class MemorySummary:
    total_kb: int
    free_kb: int
    cached_kb: int | None = None
    slab_kb: int | None = None
    anon_kb: int | None = None


@dataclass
class CrossCheck:
    item: str
    drgn: str
    crash: str
    verdict: str  # "agree" | "disagree" | "crash-limitation" | "unavailable"
    note: str = ""


@dataclass
class EngineRun:
    name: str  # "drgn" | "crash"
    ok: bool
    seconds: float
    error: str = ""
    version: str = ""
    #: One line when the engine cannot read this kernel at all (crash older
    #: than the kernel's changes), naming the release that can; None otherwise.
    unsupported: str | None = None


@dataclass
class DumpGap:
    """A read that fell on memory the dump does not hold, and what it cost."""

    section: str  # what it cut short: "tasks", "panic task", "log", "modules", ...
    error: str  # drgn's words ("could not read memory from kdump: Excluded page")
    address: int | None = None
    page: str = ""  # what the missing page held, per its struct page: "slab", "anonymous", ...


@dataclass
class DumpCheck:
    """Whether a dump holds what a report needs: the task list walked to its
    end, the panic task and the log read. ``cause`` and ``fix`` say, in one
    line each, why data is missing and how to get a dump that has it."""

    complete: bool
    tasks: int = 0
    tasks_complete: bool = True
    panic_task: str | None = None  # "pid comm", when the dump is of a panic
    log_records: int = 0
    gaps: list[DumpGap] = field(default_factory=list)
    cause: str = ""
    fix: str = ""
    dump_level: int | None = None  # makedumpfile -d of a kdump-compressed dump

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SnapshotInfo:
    """A dump of a kernel that was not crashing (a QMP snapshot of a live or
    hung guest): when it was taken and how kdebug knows there was no panic."""

    taken: str | None  # ISO 8601 UTC, the kernel's wall clock at the dump
    uptime_s: float | None
    evidence: str


@dataclass
class NoDebugInfo:
    """A tier-0 report's account of itself: made from the dump alone
    (VMCOREINFO, kallsyms, the log, the CPUs' saved registers), what it
    lacks and how to get it."""

    lacks: str  # one line: what the report cannot say without debug info
    fix: str  # one line: the -dbg package, a debuginfod URL
    package: str  # "linux-image-<release>-dbg"
    key: str  # what the debug info is looked up by: "build-id ..." or "release ... (no BUILD-ID in VMCOREINFO)"
    symbols: str  # "kallsyms" (the kernel's own symbol table, read from the dump) or "none"
    stack: str  # where panic.backtrace comes from ("the Call Trace the kernel printed in its log", "none")
    task: str = ""  # "pid comm" of the crashing task, as the log's "CPU: N PID: P Comm: C" line names it
    #: The crashing CPU's instruction pointer from the dump's NT_PRSTATUS note, named by kallsyms.
    pc: FrameRecord | None = None


@dataclass
class Report:
    signature: str
    system: SystemInfo
    panic: PanicInfo
    other_cpus: list[CpuBacktrace] = field(default_factory=list)
    tasks: TaskSummary | None = None
    log_tail: list[PrintkRecord] = field(default_factory=list)
    modules: list[ModuleRecord] = field(default_factory=list)
    memory: MemorySummary | None = None
    crosscheck: list[CrossCheck] = field(default_factory=list)
    engines: list[EngineRun] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: "vmcore", or the path of the log saved beside the dump that stood in
    #: for an unreadable one (log_tail and the panic message come from it).
    log_source: str = "vmcore"
    #: "panic" (the kernel panicked or started kdump) or "snapshot" (it did
    #: not: ``panic`` is then empty and ``snapshot`` says when it was taken).
    kind: str = "panic"
    snapshot: SnapshotInfo | None = None
    dump: DumpCheck | None = None
    #: The kernel's bug report that explains the crash (the signature is its
    #: title), or None when the log holds none (a sysrq crash, a panic()).
    splat: Splat | None = None
    #: The modules ``modules`` lists with taints, with the origin of their debug info.
    tainting_modules: list[TaintingModule] = field(default_factory=list)
    #: 1: with the kernel's debug info (drgn's types, crash); 0: from the dump
    #: alone, because no debug info was found or --no-debuginfo (see ``nodebug``).
    tier: int = 1
    nodebug: NoDebugInfo | None = None
    #: How the crashed guest started, from the kdebug capture's record:
    #: "cold", or "warm (state KEY, saved TIME)" (kdebug.warm: every warm start
    #: of one state shares its KASLR offset, boot log and random state);
    #: None for a dump kdebug did not capture. Since 1.8.
    start: str | None = None
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict:
        d = asdict(self)
        return {"schema_version": d.pop("schema_version"), "generator": "kdebug postmortem", **d}
