"""Parsers for crash 8.x output (pure: standard library and kdebug records).

Each takes one command's text as crash printed it and returns kdebug's
records, so crash's answers can be compared with drgn's field by field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kdebug.decode.tasks import RawTask, task_record
from kdebug.model import FrameRecord, ModuleRecord, TaskRecord

_SYS_LINE = re.compile(r"^\s*([A-Z][A-Z ]*[A-Z]):\s(.*)$")
_BT_HEAD = re.compile(r'^PID:\s+(\d+)\s+TASK:\s+([0-9a-f]+)\s+CPU:\s+(\d+)\s+COMMAND:\s+"(.*)"')
_BT_FRAME = re.compile(r"^\s*#(\d+)\s+\[([0-9a-f]+)\]\s+(\S+)\s+at\s+([0-9a-f]+)(?:\s+\[(\S+)\])?")
_BT_EXC_RIP = re.compile(r"\[exception RIP: ([\w.]+)(?:\+(\d+))?\]")
_MOD = re.compile(r"^([0-9a-f]+)\s+(\S+)\s+([0-9a-f]+)\s+(\d+)\s+(.*)$")
_LOG = re.compile(r"^\[\s*(\d+)\.(\d+)\]\s?(.*)$")
_KDPS_END = re.compile(r'^kdps end complete=([01]) tasks=(\d+)(?: error="(.*)")?$')
_KDPS_HEAD = re.compile(r"^kdps format=(\d+) walk=(\S+)$")
_ESCAPE = re.compile(rb"\\x([0-9a-f]{2})")


def parse_sys(text: str) -> dict[str, str]:
    """``sys``: {"RELEASE": "6.1.0-...", "PANIC": "Kernel panic - ...", ...}.
    Values are as printed, except PANIC, whose quotes are removed."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _SYS_LINE.match(line)
        if m:
            out[m.group(1).strip()] = m.group(2).strip()
    panic = out.get("PANIC", "")
    if panic.startswith('"'):  # "Oops: ..." (check log for details)
        out["PANIC"] = panic[1:].split('"', 1)[0]
    return out


def sys_cpus(info: dict[str, str]) -> int | None:
    m = re.match(r"(\d+)", info.get("CPUS", ""))
    return int(m.group(1)) if m else None


@dataclass
class CrashBacktrace:
    pid: int
    task: int
    cpu: int
    comm: str
    frames: list[FrameRecord] = field(default_factory=list)
    exception_rip: str = ""  # "native_safe_halt+11" where an exception frame stopped a function
    exception_index: int = -1  # how many frames came before that exception frame
    errors: list[str] = field(default_factory=list)


def parse_bt(text: str) -> list[CrashBacktrace]:
    """``bt`` or ``bt -a``: one CrashBacktrace per task shown."""
    out: list[CrashBacktrace] = []
    for line in text.splitlines():
        m = _BT_HEAD.match(line)
        if m:
            out.append(CrashBacktrace(int(m.group(1)), int(m.group(2), 16), int(m.group(3)), m.group(4)))
            continue
        if not out:
            continue
        bt = out[-1]
        m = _BT_FRAME.match(line)
        if m:
            bt.frames.append(FrameRecord(index=int(m.group(1)), pc=int(m.group(4), 16),
                                         function=m.group(3), module=m.group(5) or ""))
            continue
        m = _BT_EXC_RIP.search(line)
        if m and not bt.exception_rip:
            bt.exception_rip = m.group(1) + (f"+{m.group(2)}" if m.group(2) else "")
            bt.exception_index = len(bt.frames)
        elif line.startswith("bt: "):
            bt.errors.append(line[4:].strip())
    return out


def call_chain(bt: CrashBacktrace) -> list[FrameRecord]:
    """The frames with the function an exception interrupted put back in its
    place (crash shows it only as "[exception RIP: func+off]")."""
    if bt.exception_index < 0:
        return list(bt.frames)
    rip = FrameRecord(index=-1, pc=0, function=bt.exception_rip.split("+", 1)[0])
    rest = bt.frames[bt.exception_index:]
    if rest and rest[0].function == rip.function:
        rest = rest[1:]
    return bt.frames[:bt.exception_index] + [rip] + rest


@dataclass
class KdpsWalk:
    """What kdebug's crash extension (``kdps``, crash_ext/kdebug.c) found."""

    tasks: list[TaskRecord] = field(default_factory=list)
    complete: bool = False  # the walk came back to init_task
    walk: str = ""  # how it found each group's threads: "thread_head" or "thread_group"
    error: str = ""  # why it stopped early

    @property
    def user_visible(self) -> list[TaskRecord]:
        """The tasks /proc and drgn's for_each_task() list: all but the idle task (pid 0)."""
        return [t for t in self.tasks if t.pid != 0]


def _comm(raw: str) -> str:
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw.encode()).decode(errors="replace")


def parse_kdps(text: str) -> KdpsWalk:
    """``kdps``: one line per task of raw fields; the state letter and the
    kernel-thread flag come from kdebug.decode.tasks, as for kd-ps in gdb."""
    out = KdpsWalk()
    ended = False
    for line in text.splitlines():
        if m := _KDPS_HEAD.match(line):
            out.walk = m.group(2)
        elif m := _KDPS_END.match(line):
            ended = True
            out.complete = m.group(1) == "1" and int(m.group(2)) == len(out.tasks)
            out.error = m.group(3) or ("" if out.complete else f"kdps counted {m.group(2)}, printed {len(out.tasks)}")
        elif line.startswith("task="):
            kv = dict(f.split("=", 1) for f in line.split(" ") if "=" in f)
            try:
                raw = RawTask(address=int(kv["task"], 16), pid=int(kv["pid"]), tgid=int(kv["tgid"]),
                              state=int(kv["state"], 16), exit_state=int(kv["exit_state"], 16),
                              flags=int(kv["flags"], 16), comm=_comm(kv["comm"]),
                              real_parent=int(kv["real_parent"], 16), tasks_next=0, thread_group_next=None,
                              cpu=int(kv["cpu"]), on_cpu=kv["on_cpu"] != "0")
                out.tasks.append(task_record(raw, int(kv["ppid"])))
            except (KeyError, ValueError):
                out.error = f"unreadable kdps line: {line[:80]}"
    if not ended and not out.error:
        out.error = "kdps output ends before its end line"
    out.complete = out.complete and not out.error
    return out


def parse_mod(text: str) -> list[ModuleRecord]:
    """``mod``: name, base and size of each module (crash does not show refcounts)."""
    out = []
    for line in text.splitlines():
        m = _MOD.match(line)
        if m:
            out.append(ModuleRecord(name=m.group(2), size=int(m.group(4)), refcount=-1,
                                    address=int(m.group(3), 16)))
    return out


def parse_log(text: str) -> list[tuple[int, str]]:
    """``log``: (timestamp in ns, crash prints microseconds; text) per record.
    crash indents a record's further lines to its text column; that indent
    is removed so the text is the kernel's."""
    out: list[tuple[int, str]] = []
    indent = 0
    for line in text.splitlines():
        m = _LOG.match(line)
        if m:
            ns = int(m.group(1)) * 1_000_000_000 + int(m.group(2).ljust(9, "0")[:9])
            out.append((ns, m.group(3)))
            indent = m.start(3)
        elif out and line.strip():
            cont = line[indent:] if line[:indent].isspace() else line.lstrip()
            out[-1] = (out[-1][0], out[-1][1] + "\n" + cont)
    return out


def split_warnings(console: str) -> list[str]:
    """crash's own warnings (``WARNING: ...``), e.g. tasks missing from the PID hash."""
    return [ln.strip() for ln in console.splitlines() if ln.startswith("WARNING:")]
