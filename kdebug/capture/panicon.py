"""What turns a kernel's complaint into a panic, and so into a vmcore (pure).

``--panic-on LIST`` names kinds of failure that should panic the guest;
each maps to the kernel's own switches, as a sysctl kdebug writes before
the trigger and the boot parameter that does the same (named in hints).
A kernel that lacks a switch simply has no file for it under /proc/sys:
kdebug looks there, never at the version.

:func:`find_splat` reads what the console showed after the trigger: the
headers the kernel prints when something goes wrong without (yet) a panic,
and which ``--panic-on`` word would have made that a panic. Both come from
the one table of the kernel's reports, kdebug.report.taxonomy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kdebug.errors import UsageError
from kdebug.report.taxonomy import ANY_HEADER, KINDS, first_header


@dataclass(frozen=True)
class Switch:
    sysctl: str  # dotted, as sysctl(8) names it
    boot: str  # the kernel command line's equivalent


#: word -> the switches it turns on (any one present is enough; all present are set).
#: - oops: kernel.panic_on_oops, read by oops_end() (arch/x86/kernel/dumpstack.c)
#:   after an Oops or BUG(); ``oops=panic`` (kernel/panic.c oops_setup()).
#: - warn: kernel.panic_on_warn, since commit 9e3961a09798 ("kernel: add
#:   panic_on_warn") (v3.19); KASAN, KFENCE, UBSAN, KCSAN and "scheduling while
#:   atomic" panic on it too, all through check_panic_on_warn() since commit
#:   79cc1ba7badf ("panic: Consolidate open-coded panic_on_warn checks")
#:   (v6.2, and in 6.1.y stable; before it each open-coded the same test).
#: - hung: kernel.hung_task_panic (kernel/hung_task.c check_hung_task()).
#: - lockup: kernel.softlockup_panic (kernel/watchdog.c), kernel.hardlockup_panic
#:   (NMI watchdog, absent where there is none, as under TCG), and
#:   kernel.panic_on_rcu_stall (kernel/rcu/tree_stall.h panic_on_rcu_stall()).
#: - oom: vm.panic_on_oom (mm/oom_kill.c check_panic_on_oom(), "[PATCH] support
#:   for panic at OOM", v2.6.18); no boot parameter of its own, but any sysctl
#:   can be set as sysctl.NAME=VALUE since commit 3db978d480e2
#:   ("kernel/sysctl: support setting sysctl parameters from kernel command line") (v5.8).
SWITCHES: dict[str, tuple[Switch, ...]] = {
    "oops": (Switch("kernel.panic_on_oops", "oops=panic"),),
    "warn": (Switch("kernel.panic_on_warn", "panic_on_warn=1"),),
    "hung": (Switch("kernel.hung_task_panic", "hung_task_panic=1"),),
    "lockup": (Switch("kernel.softlockup_panic", "softlockup_panic=1"),
               Switch("kernel.hardlockup_panic", "nmi_watchdog=panic"),
               Switch("kernel.panic_on_rcu_stall", "sysctl.kernel.panic_on_rcu_stall=1")),
    "oom": (Switch("vm.panic_on_oom", "sysctl.vm.panic_on_oom=1"),),
}
WORDS = (*SWITCHES, "none")
#: The kdump convention: an Oops is a crash worth a dump.
DEFAULT = ("oops",)


def parse_panic_on(values: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"warn,hung"`` (or several such) -> the words in effect, the default
    (oops) included unless ``none`` is given alone."""
    if values is None:
        return DEFAULT
    if isinstance(values, str):
        values = [values]
    words: list[str] = []
    for v in values:
        for w in v.replace(" ", ",").split(","):
            w = w.strip().lower()
            if not w:
                continue
            if w not in WORDS:
                raise UsageError(f"unknown --panic-on word {w!r}", hint="one or more of " + ", ".join(WORDS))
            if w not in words:
                words.append(w)
    if "none" in words:
        if len(words) > 1:
            raise UsageError("--panic-on none cannot be combined with other words")
        return ()
    return tuple(dict.fromkeys([*DEFAULT, *words]))


def sysctl_path(sysctl: str) -> str:
    return "/proc/sys/" + sysctl.replace(".", "/")


def settings(words: tuple[str, ...], present: set[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """(sysctl -> value to write, switches this kernel lacks, words it cannot
    honour at all). ``present``: the sysctls that exist in the guest. With no
    words (``none``), kdebug's own default is turned off."""
    writes: dict[str, str] = {}
    absent: list[str] = []
    impossible: list[str] = []
    if not words:
        sw = SWITCHES["oops"][0]
        if sw.sysctl in present:
            writes[sw.sysctl] = "0"
        return writes, absent, impossible
    for w in words:
        have = [s for s in SWITCHES[w] if s.sysctl in present]
        absent += [s.sysctl for s in SWITCHES[w] if s.sysctl not in present]
        if not have:
            impossible.append(w)
        for s in have:
            writes[s.sysctl] = "1"
    return writes, absent, impossible


def all_sysctls() -> list[str]:
    return [s.sysctl for sws in SWITCHES.values() for s in sws]


@dataclass(frozen=True)
class Splat:
    """A kernel complaint on the console: its kind (kdebug.report.taxonomy's),
    its header line, and the ``--panic-on`` word that would have panicked the
    kernel there (None: nothing does)."""

    kind: str
    line: str
    word: str | None

    @property
    def name(self) -> str:
        """What a person calls it ("NULL pointer dereference", "KASAN report")."""
        kind = KINDS.get(self.kind)
        return kind.label if kind is not None else self.kind

    def to_dict(self) -> dict:
        return {"kind": self.kind, "line": self.line, "panic_on": self.word}


#: One pattern for a console watcher: the header of any report the taxonomy
#: knows (kdebug.report.taxonomy.FORMATS); :func:`find_splat` names what it matched.
ANY_SPLAT = ANY_HEADER


def find_splat(console: str) -> Splat | None:
    """The first complaint on the console, or None."""
    hit = first_header(console.splitlines())
    return Splat(hit.kind, hit.line, hit.panic_on) if hit is not None else None


def switch_text(word: str) -> str:
    """``--panic-on warn (kernel.panic_on_warn=1, boot: panic_on_warn=1)``."""
    sw = SWITCHES[word]
    return (f"--panic-on {word} (" + ", ".join(f"{s.sysctl}=1" for s in sw) + "; boot: "
            + ", ".join(s.boot for s in sw) + ")")
