"""Parsers for crash 8.x output (pure: standard library and kdebug records).

Each takes one command's text as crash printed it and returns kdebug's
records, so crash's answers can be compared with drgn's field by field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kdebug.model import FrameRecord, ModuleRecord, TaskRecord

_SYS_LINE = re.compile(r"^\s*([A-Z][A-Z ]*[A-Z]):\s(.*)$")
_BT_HEAD = re.compile(r'^PID:\s+(\d+)\s+TASK:\s+([0-9a-f]+)\s+CPU:\s+(\d+)\s+COMMAND:\s+"(.*)"')
_BT_FRAME = re.compile(r"^\s*#(\d+)\s+\[([0-9a-f]+)\]\s+(\S+)\s+at\s+([0-9a-f]+)(?:\s+\[(\S+)\])?")
_BT_EXC_RIP = re.compile(r"\[exception RIP: ([\w.]+)(?:\+(\d+))?\]")
_PS = re.compile(r"^([> ])\s*(\d+)\s+(-?\d+)\s+(\d+)\s+([0-9a-f]+)\s+(\w\w)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(.*)$")
_MOD = re.compile(r"^([0-9a-f]+)\s+(\S+)\s+([0-9a-f]+)\s+(\d+)\s+(.*)$")
_LOG = re.compile(r"^\[\s*(\d+)\.(\d+)\]\s?(.*)$")
#: crash's ps state names -> the letter ps(1) and kdebug use.
PS_STATES = {"RU": "R", "IN": "S", "UN": "D", "ST": "T", "TR": "t", "ZO": "Z", "DE": "X",
             "SW": "W", "ID": "I", "NE": "N", "PA": "P", "WA": "W"}


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


def parse_ps(text: str) -> list[TaskRecord]:
    """``ps``: the tasks crash found (on Debian 6.1 with crash 8.0.2, only a few)."""
    out = []
    for line in text.splitlines():
        m = _PS.match(line)
        if not m:
            continue
        comm = m.group(10).strip()
        kthread = comm.startswith("[") and comm.endswith("]")
        out.append(TaskRecord(pid=int(m.group(2)), tgid=int(m.group(2)), ppid=int(m.group(3)),
                              state=PS_STATES.get(m.group(6), "?"), cpu=int(m.group(4)),
                              comm=comm[1:-1] if kthread else comm, address=int(m.group(5), 16),
                              rss_kb=int(m.group(9)), is_kthread=kthread, on_cpu=m.group(1) == ">"))
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
    """``log``: (timestamp in ns, text) per line; continuation lines join the previous."""
    out: list[tuple[int, str]] = []
    for line in text.splitlines():
        m = _LOG.match(line)
        if m:
            ns = int(m.group(1)) * 1_000_000_000 + int(m.group(2).ljust(9, "0")[:9])
            out.append((ns, m.group(3)))
        elif out and line.strip():
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
    return out


def parse_kmem_i(text: str) -> dict[str, int]:
    """``kmem -i``: {"TOTAL MEM": pages, "FREE": pages, ...}."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Z][A-Z ]+?)\s{2,}(\d+)\s", line)
        if m:
            out[m.group(1).strip()] = int(m.group(2))
    return out


def split_warnings(console: str) -> list[str]:
    """crash's own warnings (``WARNING: ...``), e.g. tasks missing from the PID hash."""
    return [ln.strip() for ln in console.splitlines() if ln.startswith("WARNING:")]
