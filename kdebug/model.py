"""Records every stage hands on (pure). gdb, drgn and crash collectors fill
them; kdebug/format.py renders them, so `kd-ps` in gdb, `kdebug postmortem`
and a crash transcript show tasks the same way."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: The letters of fs/proc/array.c task_state_array, in bit order after R.
TASK_STATE_LETTERS = "RSDTtXZPI"
#: What panic() prints before its message (kernel/panic.c: pr_emerg("Kernel
#: panic - not syncing: %s\n", buf)); one constant for every reader of a log.
PANIC_PREFIX = "Kernel panic - not syncing: "


@dataclass(frozen=True)
class TaskRecord:
    """One ``struct task_struct``."""

    pid: int
    tgid: int
    ppid: int
    state: str  # one letter as in ps: R S D T t X Z P I
    cpu: int
    comm: str
    address: int  # of the task_struct
    rss_kb: int | None = None  # resident memory, user tasks only
    is_kthread: bool = False
    on_cpu: bool = False  # running on its CPU right now (or at the crash)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PrintkRecord:
    """One record of the printk ring buffer."""

    seq: int
    timestamp_ns: int
    level: int  # 0 (emerg) .. 7 (debug)
    text: str
    facility: int = 0
    caller: str = ""  # "T123" (task) or "C1" (cpu) where the kernel records it

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModuleRecord:
    """One ``struct module``."""

    name: str
    size: int  # bytes, as /proc/modules counts them (every region of the module)
    refcount: int  # use count as /proc/modules shows it; -1 when unknown
    address: int  # start of the module's text, as /proc/modules shows it
    state: str = "live"
    taints: str = ""  # as in /proc/modules: "OE", "" for none
    out_of_tree: bool = False
    used_by: list[str] = field(default_factory=list)  # holders, in /proc/modules' order
    permanent: bool = False  # init but no exit: /proc/modules says "[permanent]"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FrameRecord:
    """One frame of a backtrace."""

    index: int
    pc: int
    function: str  # "" when unknown
    offset: int = 0  # pc - function start
    size: int = 0  # function size, when known (func+off/size as the kernel prints)
    module: str = ""  # "" for vmlinux
    file: str = ""
    line: int = 0
    inline: bool = False  # a function inlined into the next frame (same pc)

    def to_dict(self) -> dict:
        return asdict(self)
