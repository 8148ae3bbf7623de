"""Which kernel changes a crash binary cannot follow, and the crash release
that follows each (pure).

Nothing here compares version numbers. A change is recognised on the kernel
(a symbol its vmlinux has or lacks) or in crash's own words; whether this
crash already has the fix is recognised in the crash binary, by a string
only the fixed code carries. The releases and commits come from
crash-utility/crash's history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class KernelChange:
    """A kernel change that an older crash cannot follow."""

    change: str  # what changed, with the kernel commit
    release: str  # the first crash release that follows it
    crash_commit: str
    gone: tuple[str, ...] = ()  # vmlinux symbols the change removed ...
    present: tuple[str, ...] = ()  # ... and ones it has (so the probe is not fooled by a different config)
    message: str = ""  # crash's own words when it meets the change
    fixed_marker: tuple[bytes, ...] = ()  # strings only a crash with the fix carries

    def on_kernel(self, symbols: set[str], console: str = "") -> bool:
        if self.message and self.message in console:
            return True
        if not (self.gone or self.present):
            return False
        return not any(s in symbols for s in self.gone) and all(s in symbols for s in self.present)

    def fixed_in(self, crash_has: Callable[[bytes], bool]) -> bool:
        return any(crash_has(m) for m in self.fixed_marker)


#: Changes that stop crash before its first command, oldest fix first.
CANNOT_OPEN = (
    # Kernel commit ac3b43283923 ("module: replace module_layout with
    # module_memory"): crash then asks for member offsets struct module no
    # longer has. crash commit 7750e61fdb2a ("Support module memory layout
    # change on Linux 6.4").
    KernelChange(
        change="struct module keeps its regions in mem[] (kernel ac3b43283923, v6.4)",
        release="8.0.4", crash_commit="7750e61fdb2a",
        message="invalid structure member offset: module_core_size",
        fixed_marker=(b"module_memory",)),
    # crash recognises a relocated (KASLR) x86_64 kernel by the symbol
    # module_load_offset, which kernel commit 223b5e57d0d5 ("mm/execmem,
    # arch: convert remaining overrides of module_alloc to execmem") removed;
    # crash then reads page_offset_base at its link-time address and exits
    # during initialisation, silently under -s. crash commits 6752571d8d78
    # ("X86 64: fix for crash session loading failure") and 7b5c8bca7d05
    # look for kaslr_regions, then kaslr_get_random_long, instead.
    KernelChange(
        change="module_load_offset, by which crash tells a KASLR kernel, is gone (kernel 223b5e57d0d5, v6.10)",
        release="8.0.6", crash_commit="6752571d8d78",
        gone=("module_load_offset",), present=("kaslr_get_random_long",),
        fixed_marker=(b"kaslr_get_random_long", b"kaslr_regions")),
)

#: Seen in a running session: crash's PID-hash walk misses most tasks.
PID_FLEX_ARRAY = KernelChange(
    # Kernel commit b69f0aeb0689 ("pid: Replace struct pid 1-element array
    # with flex-array"); crash commit 88580068b7dd ("Fix failure of gathering
    # task table on Linux 6.5-rc1 and later").
    change="struct pid ends in a flexible array numbers[] (kernel b69f0aeb0689, v6.5)",
    release="8.0.4", crash_commit="88580068b7dd",
    message="not found in PID hash",
    fixed_marker=(b"pid.numbers",))


def fixed_by(change: KernelChange) -> str:
    return f"crash {change.release} reads it (crash {change.crash_commit})"


def probe_symbols(changes: Iterable[KernelChange] = CANNOT_OPEN) -> set[str]:
    """The vmlinux symbols the table asks about."""
    return {s for c in changes for s in (*c.gone, *c.present)}


def cannot_open(version: str, symbols: set[str], console: str, crash_has: Callable[[bytes], bool],
                exit_status: int | None = None) -> str:
    """One line for a crash that stopped before its first command: the kernel
    change it cannot follow and the release that can, when the table knows
    it; otherwise crash's last words."""
    crash = version or "crash"
    found = [c for c in CANNOT_OPEN if c.on_kernel(symbols, console) and not c.fixed_in(crash_has)]
    if found:
        newest = found[-1]  # the table is ordered by release: the newest fix covers the older ones
        return f"{crash} cannot read this kernel: {newest.change}; {fixed_by(newest)}"
    said = [ln.strip() for ln in console.splitlines() if ln.strip().startswith(("crash:", "WARNING:", "ERROR"))]
    why = said[-1] if said else (f"it exits with status {exit_status} before its first command, saying nothing"
                                 if exit_status is not None else "it stops before its first command")
    return f"{crash} cannot open this dump: {why}"


# --- which crash, of those on this host -------------------------------------------

#: Every change the table knows, each with the markers of its fix.
CHANGES = (*CANNOT_OPEN, PID_FLEX_ARRAY)
MARKERS = tuple(dict.fromkeys(m for c in CHANGES for m in c.fixed_marker))


@dataclass(frozen=True)
class CrashBinary:
    """One crash binary on this host and the fix markers it carries."""

    path: str
    version: str  # its banner ("crash 9.0.2"); "" when it would not say
    markers: frozenset[bytes]  # which of MARKERS the binary holds

    def has(self, marker: bytes) -> bool:
        return marker in self.markers

    def lacks(self, changes: Iterable[KernelChange]) -> list[KernelChange]:
        return [c for c in changes if not c.fixed_in(self.has)]

    @property
    def name(self) -> str:
        return f"{self.version or 'crash'} ({self.path})"


@dataclass(frozen=True)
class CrashChoice:
    """The crash kdebug runs on a dump's kernel, or None with the reason."""

    binary: CrashBinary | None
    reason: str  # one line: why this one, or why none
    unsupported: str | None = None  # set when no crash here can read the kernel


def choose_crash(binaries: Iterable[CrashBinary], symbols: set[str] | None) -> CrashChoice:
    """The first of ``binaries`` (kdebug's order of preference) that can open
    this kernel and follows the most of the table's other changes.
    ``symbols``: the vmlinux symbols of :func:`probe_symbols`, None when the
    vmlinux could not be read; then every change counts as on the kernel, and
    a crash is refused only by what it is seen to lack, never for certain.
    An older crash earlier in the order (a user's, on PATH) loses to a later
    one that follows a change it does not."""
    binaries = list(binaries)
    if not binaries:
        return CrashChoice(None, "crash is not installed (scripts/setup.sh builds one; apt-get install crash)")
    on_kernel = [c for c in CANNOT_OPEN if symbols is None or c.on_kernel(symbols)]

    def score(i: int) -> tuple[int, int, int]:
        b = binaries[i]
        return (len(b.lacks(on_kernel)), len(b.lacks([PID_FLEX_ARRAY])), i)

    best = binaries[min(range(len(binaries)), key=score)]
    blocking = best.lacks(on_kernel)
    if blocking and symbols is not None:
        newest = blocking[-1]
        tried = ", ".join(b.name for b in binaries)
        line = (f"no crash here can read this kernel ({newest.change}; {fixed_by(newest)}); "
                f"tried {tried}")
        return CrashChoice(None, line, unsupported=line)
    others = [b for b in binaries if b is not best]
    follows = [c.change for c in (*on_kernel, PID_FLEX_ARRAY)
               if c.fixed_in(best.has) and any(not c.fixed_in(o.has) for o in others)]
    why = f"{best.name}" + (f", which follows what the others do not: {'; '.join(follows)}" if follows else "")
    return CrashChoice(best, why)
