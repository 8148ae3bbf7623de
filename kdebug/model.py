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
    """One frame of a backtrace, filled alike by gdb (kd-bt) and drgn (the
    report) through kdebug.decode.frames. The walk begins where the CPU was
    (frame 0, whatever its pc) and stops at the first user-space pc after it:
    the user side of a syscall or interrupt is never a frame.

    A frame's symbol is the ELF symbol (vmlinux's, or the module's .ko) that
    holds its lookup address: its pc for frame 0 of a running CPU, pc - 1 (the
    call) for a return address. Among symbols holding it, the one starting
    closest, then the smaller, then global over weak over local (drgn's rule).

    - ``index``: 0 for the innermost frame, counting inline frames.
    - ``pc``: the frame's program counter (a return address beyond frame 0);
      0 when not known: a frame read from a stack the kernel printed (tier 0's
      Call Trace, kdebug.report.logtext) has a name and offset but no address.
      A frame really at address 0 (a call through a NULL pointer) has no name.
    - ``function``: the ELF symbol's name ("func+off/size" as the kernel
      prints it: a compiler clone is "foo.isra.0"); for an inline frame, or
      where no ELF symbol holds the pc, the DWARF function's name; "" when
      neither knows it.
    - ``offset``: pc - the ELF symbol's start; 0 for inline frames and
      frames without an ELF symbol.
    - ``size``: the ELF symbol's st_size (what the kernel prints after "/");
      0 for inline frames and frames without an ELF symbol.
    - ``module``: the name of the loaded module whose memory holds pc; ""
      for vmlinux (and for an address in no module).
    - ``file``, ``line``: DWARF's source line of the lookup address; in the
      frame that an inlined call sits in, the call's line. "" and 0 unknown.
    - ``inline``: this frame is a function inlined into the next one (same pc).
    """

    index: int
    pc: int
    function: str
    offset: int = 0
    size: int = 0
    module: str = ""
    file: str = ""
    line: int = 0
    inline: bool = False

    def to_dict(self) -> dict:
        return asdict(self)
