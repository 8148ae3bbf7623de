"""makedumpfile's page filter (``-d``): which level is safe for a kernel and a
makedumpfile binary, and why a filtered dump lacks what a report needs (pure:
standard library only).

makedumpfile sorts every page by its ``struct page`` and the numbers the
kernel exports in VMCOREINFO. When the kernel marks a kind of page in a way
the binary does not read, the binary sorts it wrongly and a filter level
drops pages the kernel's own data lives in. Both sides are read as facts,
never as version numbers:

- the kernel: the names of the ``NUMBER(...)`` entries it exports, found as
  strings in its image (``VMCOREINFO_NUMBER(name)`` stringifies the name;
  nothing else prints these identifiers), or in a dump's VMCOREINFO;
- the binary: the ``NUMBER(...)=`` keys it looks for, found as strings in it
  (makedumpfile's ``READ_NUMBER`` builds the key ``"NUMBER(" name ")="``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from kdebug import elf

#: makedumpfile -d bits (makedumpfile.h DL_EXCLUDE_*).
ZERO, CACHE, CACHE_PRIVATE, USER, FREE = 1, 2, 4, 8, 16
BIT_NAMES = {ZERO: "zero pages", CACHE: "page cache", CACHE_PRIVATE: "private page cache",
             USER: "user data", FREE: "free pages"}
#: Everything but kernel data: the smallest dump, when it is safe.
DEFAULT_LEVEL = 31


@dataclass(frozen=True)
class Hazard:
    """A kernel page marking that a binary must read for ``bits`` to be safe."""

    key: str  # the VMCOREINFO NUMBER() the kernel exports and the binary must read
    bits: int  # the -d bits that drop kernel data when the binary does not read it
    name: str  # the pages so marked
    pages: str  # what gets dropped, said for a user
    since: str  # the kernel commit that introduced the marking
    tool_fix: str  # the first makedumpfile release that reads it


HAZARDS = (
    # Since Linux kernel commit 46df8e73a4a3 ("mm: free up PG_slab") (in v6.10)
    # slab pages carry a page type in page._mapcount instead of PG_slab. A
    # makedumpfile that does not read PAGE_SLAB_MAPCOUNT_VALUE takes slab pages
    # whose word at page.mapping is odd for anonymous memory, so -d 8 drops
    # them (makedumpfile commit bad2a7c4fa75, "Fix wrong exclusion of Slab pages
    # on Linux 6.10-rc1 and later", first released in 1.7.6). task_structs are
    # slab objects: the task list breaks off.
    Hazard("PAGE_SLAB_MAPCOUNT_VALUE", USER, "slab pages", "slab pages (task_structs, inodes, most kernel objects)",
           '46df8e73a4a3 ("mm: free up PG_slab", v6.10)', "1.7.6"),
    # Not listed, because no string in a binary shows it: since 130d4df57390
    # ("mm/sl[au]b: rearrange struct slab fields to allow larger rcu_head") (in
    # v6.2) a PG_slab page's word at page.mapping can be odd as well, and only
    # makedumpfile 1.7.3 (5f17bdd2128d) checks PG_slab before calling a page
    # anonymous. The check after every capture (drgn walks the task list to its
    # end) catches such a dump, and explain_missing names the level without -d 8.
    #
    # Also not listed, because it costs size, not data: since 4ffca5a96678
    # ("mm: support only one page_type per page") (in v6.12) a page type is a
    # value in the top byte of page._mapcount, and makedumpfile before 1.7.7
    # (72c3414949bd, "fix detection of typed (compound) pages") takes buddy
    # pages for slab pages, so -d 16 excludes no free page; only the zeroed
    # ones go, as zero pages. Measured on a 1 GiB 6.12 guest: trixie's 1.7.6 at
    # -d 31 writes 72 MB (complete); bookworm's 1.7.2 at -d 31, 51 MB with the
    # slab pages lost. No string in the binary shows the fix.
)
KEYS = tuple(h.key for h in HAZARDS)


def level_names(bits: int) -> str:
    return ", ".join(name for bit, name in BIT_NAMES.items() if bits & bit) or "nothing"


@dataclass(frozen=True)
class LevelChoice:
    """The -d level a capture uses, and why (kept in capture.json)."""

    level: int
    requested: int | None  # what the user asked for; None: kdebug chose
    reason: str
    safe: bool  # False: the level drops kernel data on this kernel (asked for anyway)
    kernel_exports: tuple[str, ...] | None  # hazard keys the kernel exports; None: unknown
    tool_reads: tuple[str, ...] | None  # hazard keys the binary reads; None: unknown
    tool: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("kernel_exports", "tool_reads"):
            d[k] = list(d[k]) if d[k] is not None else None
        return d


def choose_level(requested: int | None, kernel_exports: Iterable[str] | None,
                 tool_reads: Iterable[str] | None, tool: str = "makedumpfile") -> LevelChoice:
    """The level for this kernel and binary: ``requested`` as asked (said to be
    unsafe where it is), else DEFAULT_LEVEL less the bits that would drop
    kernel data. An unknown side counts as the unsafe one."""
    kernel = None if kernel_exports is None else tuple(sorted(set(kernel_exports) & set(KEYS)))
    reads = None if tool_reads is None else tuple(sorted(set(tool_reads) & set(KEYS)))
    risky = [h for h in HAZARDS
             if (kernel is None or h.key in kernel) and (reads is None or h.key not in reads)]
    unsafe = 0
    for h in risky:
        unsafe |= h.bits
    why = "; ".join(_hazard_text(h, kernel is None, reads is None, tool) for h in risky)

    def choice(level: int, reason: str, safe: bool) -> LevelChoice:
        return LevelChoice(level, requested, reason, safe, kernel, reads, tool)

    if requested is not None:
        if requested & unsafe:
            return choice(requested, f"-d {requested} as asked, though it drops kernel data here: {why}; "
                                     f"-d {requested & ~unsafe} would keep it", False)
        return choice(requested, f"-d {requested} as asked", True)
    level = DEFAULT_LEVEL & ~unsafe
    if not unsafe:
        return choice(level, f"-d {level}: {tool} filters {level_names(level)} safely on this kernel", True)
    return choice(level, f"-d {level}, not {DEFAULT_LEVEL}: {why}, so {level_names(unsafe)} stay in the dump",
                  True)


def _hazard_text(h: Hazard, kernel_unknown: bool, tool_unknown: bool, tool: str) -> str:
    if kernel_unknown:
        return (f"the kernel's VMCOREINFO names could not be read, so it may mark {h.pages} "
                f"with {h.key} (since {h.since})")
    if tool_unknown:
        return f"{tool} could not be read to see whether it knows {h.key}, which this kernel exports"
    return (f"{tool} does not read NUMBER({h.key}), which this kernel exports (since {h.since}): "
            f"its {level_names(h.bits)} filter (-d {h.bits}) would drop {h.pages}")


# --- reading both sides ---------------------------------------------------------

def tool_reads(binary: Path) -> set[str] | None:
    """The hazard keys a makedumpfile binary looks for in VMCOREINFO (None: unreadable)."""
    try:
        data = binary.read_bytes()
    except OSError:
        return None
    return {k for k in KEYS if f"NUMBER({k})=".encode() in data}


def kernel_exports(read_at: elf.ReadAt) -> set[str]:
    """The hazard keys a kernel ELF (a vmlinux, or the one inside a bzImage)
    exports as VMCOREINFO numbers: their names in its loaded segments. Only
    those are read: a debug vmlinux is ~600 MB, nearly all DWARF, which names
    far more."""
    found: set[str] = set()
    for seg in elf.parse_elf_header(read_at).segments:
        if seg.type == elf.PT_LOAD and seg.filesz:
            data = read_at(seg.offset, seg.filesz)
            found |= {k for k in KEYS if k.encode() + b"\0" in data}
    return found


def kernel_exports_file(vmlinux: Path | None, image: Path | None = None) -> set[str] | None:
    """:func:`kernel_exports` of a vmlinux, else of the ELF inside a bzImage;
    None when neither can be read."""
    try:
        if vmlinux is not None:
            with open(vmlinux, "rb") as f:
                return kernel_exports(elf.file_reader(f))
        if image is not None:
            return kernel_exports(elf.bytes_reader(elf.bzimage_vmlinux(image.read_bytes())))
    except (OSError, elf.FormatError):
        return None
    return None


def dump_exports(vmcoreinfo: dict[str, str]) -> set[str]:
    """The hazard keys a dump's own VMCOREINFO carries."""
    return {k for k in KEYS if f"NUMBER({k})" in vmcoreinfo}


# --- a dump that lacks pages --------------------------------------------------------

def explain_missing(fmt: str, dump_level: int | None, vmcoreinfo: dict[str, str],
                    pages: Iterable[str] = ()) -> tuple[str, str]:
    """(cause, fix) for reads that fell on pages absent from a dump.
    ``pages``: what the missing pages held, where the kernel's struct page
    says ("slab", ...)."""
    kinds = sorted({p for p in pages if p})
    held = f" ({', '.join(kinds)} pages)" if kinds else ""
    if fmt == "kdump" and dump_level:
        for h in HAZARDS:
            if dump_level & h.bits and h.key in dump_exports(vmcoreinfo):
                safe = dump_level & ~h.bits
                return (f"makedumpfile -d {dump_level} left out kernel data{held}: this kernel marks "
                        f"{h.name} with {h.key} (since {h.since}), and makedumpfile before "
                        f"{h.tool_fix} files them under {level_names(h.bits)} (-d {h.bits})",
                        f"capture again with -d {safe} (kdebug capture picks a safe level itself), "
                        f"or with makedumpfile {h.tool_fix} or newer")
        if "slab" in kinds and dump_level & USER:
            # struct page says the missing pages were slab: only the user-data
            # filter can have taken them (for anonymous memory, see HAZARDS).
            return (f"makedumpfile -d {dump_level} left out kernel data (slab pages): its user data "
                    f"filter (-d {USER}) took them for anonymous memory, as makedumpfile does on "
                    "kernels whose slab marking it does not know",
                    f"capture again with -d {dump_level & ~USER}, or with a newer makedumpfile")
        return (f"the dump was filtered (makedumpfile -d {dump_level}) and lacks pages the kernel's "
                f"data needs{held}",
                f"capture again with a lower level (-d {dump_level & (ZERO | FREE) or 0})")
    if fmt == "kdump" and dump_level is None:
        return (f"the dump lacks pages the kernel's data needs{held}; its filter level is not recorded",
                "capture again unfiltered or with -d 17 (zero and free pages only)")
    return (f"the dump lacks pages the kernel's data points to{held}: it was cut short, or "
            "memory was corrupted", "capture again; if it recurs, read the addresses in the warnings")
