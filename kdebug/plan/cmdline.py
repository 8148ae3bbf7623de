"""The kernel command line, and the crashkernel= rules (pure)."""

from __future__ import annotations

import re
import shlex

from kdebug.errors import UsageError
from kdebug.plan.profile import parse_size_mb

#: Measured here (LAB-NOTES): a capture kernel of the Debian cloud kernel runs
#: out of memory in 64M and 72M ("System is deadlocked on memory"); 80M is
#: the floor for 1-8 GiB guests, 128M leaves headroom.
CRASHKERNEL_MIN_MB = 80
CRASHKERNEL_DEFAULT = "128M"

_RANGE = re.compile(r"^(\d+[KMG]?)-(\d+[KMG]?)?:(\d+[KMG]?)$", re.I)


def crashkernel_mb(value: str, memory_mb: int) -> int:
    """Size the kernel will reserve for ``crashkernel=value`` in a guest of ``memory_mb``.

    Accepts ``SIZE``, ``SIZE@OFFSET``, ``SIZE,high|low`` and the range form
    ``start-[end]:size[,...]`` (Documentation/admin-guide/kdump/kdump.rst).
    """
    v = value.strip()
    if ":" in v:
        for part in v.split(","):
            if part.startswith("@"):
                continue
            m = _RANGE.match(part.split("@")[0])
            if not m:
                raise UsageError(f"bad crashkernel range {part!r}")
            start = parse_size_mb(m.group(1), "crashkernel")
            end = parse_size_mb(m.group(2), "crashkernel") if m.group(2) else None
            if memory_mb >= start and (end is None or memory_mb < end):
                return parse_size_mb(m.group(3), "crashkernel")
        return 0
    size = v.split("@")[0].split(",")[0]
    return parse_size_mb(size, "crashkernel")


def check_crashkernel(value: str, memory_mb: int) -> int:
    mb = crashkernel_mb(value, memory_mb)
    if mb == 0:
        raise UsageError(f"crashkernel={value} reserves nothing for a {memory_mb} MiB guest")
    if mb < CRASHKERNEL_MIN_MB:
        raise UsageError(
            f"crashkernel={value} is too small: the capture kernel needs at least "
            f"{CRASHKERNEL_MIN_MB}M here (with less it runs out of memory: "
            "'System is deadlocked on memory')",
            hint=f"use {CRASHKERNEL_DEFAULT}",
        )
    if mb > memory_mb // 2:
        raise UsageError(
            f"crashkernel={value} takes more than half of the guest's {memory_mb} MiB",
            hint="raise --memory or lower crashkernel",
        )
    return mb


def build_cmdline(base: tuple[str, ...] | list[str], *, crashkernel: str | None = None,
                  nokaslr: bool = False, root: str | None = None,
                  extra: tuple[str, ...] | list[str] = ()) -> str:
    """Join profile args and options; a later ``key=`` replaces an earlier one."""
    args: list[str] = list(base)
    if crashkernel:
        args.append(f"crashkernel={crashkernel}")
    if nokaslr:
        args.append("nokaslr")
    if root:
        args += [f"root={root}", "rw"]
    for e in extra:
        args += shlex.split(e)
    out: list[str] = []
    for a in args:
        key = a.split("=", 1)[0] + "=" if "=" in a else None
        # console= may repeat meaningfully; every other key= is last-wins
        if key and key != "console=":
            out = [o for o in out if not o.startswith(key)]
        if a not in out or key == "console=":
            out.append(a)
    return " ".join(out)


def cmdline_value(cmdline: str, key: str) -> str | None:
    val = None
    for a in cmdline.split():
        if a.startswith(key + "="):
            val = a.split("=", 1)[1]
    return val
