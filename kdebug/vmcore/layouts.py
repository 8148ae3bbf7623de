"""Where machines leave their dumps, and the log saved beside each (pure:
standard library only).

Three layouts are known, found at any depth under the directory given:

- kdebug's capture directory: ``vmcore`` beside ``capture.json``.
- Debian/Ubuntu kdump-tools (``kdump-config savecore``):
  ``/var/crash/<YYYYmmddHHMM>/dump.<YYYYmmddHHMM>`` with the capture kernel's
  ``makedumpfile --dump-dmesg`` output in ``dmesg.<YYYYmmddHHMM>``; a dump
  still being written (or cut short) is ``dump-incomplete``.
- RHEL/Fedora kdump (``kdump-lib-initramfs.sh``):
  ``/var/crash/<host>-<YYYY-MM-DD-HH:MM:SS>/vmcore`` with ``vmcore-dmesg.txt``
  from kexec-tools' vmcore-dmesg; unfinished, it is ``vmcore-incomplete``.

Any other file whose first bytes are a dump's (an ELF core, kdump-compressed,
makedumpfile's flattened stream), or whose name says vmcore, is found too, as
a plain file. Symlinks are followed, each real directory once; a symlinked
file pointing inside the same root is skipped (it would be listed twice).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from kdebug.errors import UsageError, VmcoreError
from kdebug.model import PrintkRecord

LAYOUTS = ("kdebug", "kdump-tools", "rhel-kdump", "file")
KDUMP_TOOLS_DUMP = re.compile(r"^dump\.(\d{12})$")
KDUMP_TOOLS_INCOMPLETE = "dump-incomplete"
RHEL_DUMP, RHEL_INCOMPLETE, RHEL_DMESG = "vmcore", "vmcore-incomplete", "vmcore-dmesg.txt"
RHEL_DIR = re.compile(r"-\d{4}-\d{2}-\d{2}-\d{2}:\d{2}(:\d{2})?$")
KDEBUG_RECORD = "capture.json"
#: What kdebug's capture leaves when a dump was cut short: never a dump to analyse.
KDEBUG_PARTIAL = "vmcore.partial"
_ET_CORE = 4
_WHERE = ("kdebug capture directories, kdump-tools <stamp>/dump.<stamp>, RHEL <host>-<date>/vmcore "
          "or dump files, at any depth")


@dataclass(frozen=True)
class DumpSite:
    """One dump where a machine left it."""

    vmcore: Path
    layout: str  # one of LAYOUTS
    dmesg: Path | None = None  # the log its writer saved beside it
    #: Set when the writer's own naming says the dump was not finished.
    incomplete: str = ""

    def to_dict(self) -> dict:
        return {"vmcore": str(self.vmcore), "layout": self.layout,
                "dmesg": str(self.dmesg) if self.dmesg else None, "incomplete": self.incomplete}


def looks_like_dump(path: Path) -> bool:
    """Its first bytes are an ELF core, a kdump-compressed header or a
    flattened stream (an ELF vmlinux or module is not a dump)."""
    try:
        with open(path, "rb") as f:
            head = f.read(18)
    except OSError:
        return False
    if head.startswith(b"\x7fELF") and len(head) == 18:
        order = "<" if head[5] == 1 else ">"
        return struct.unpack(order + "H", head[16:18])[0] == _ET_CORE
    return head.startswith((b"KDUMP   ", b"makedumpfile"))


def named_like_dump(name: str) -> bool:
    """Named as a vmcore (and not one of the text files written beside one):
    such a file is listed even when it is empty or damaged, so the user hears why."""
    low = name.lower()
    return "vmcore" in low and not low.endswith((".txt", ".log", ".json", ".html", ".md"))


def sites_in(directory: Path, names: list[str]) -> tuple[list[DumpSite], set[str]]:
    """The dumps one directory holds by its layout, and the file names the
    layout accounts for (so they are not looked at again)."""
    sites: list[DumpSite] = []
    claimed: set[str] = set()
    have = set(names)
    if KDEBUG_RECORD in have:
        claimed |= {KDEBUG_RECORD, KDEBUG_PARTIAL, RHEL_DUMP}
        if RHEL_DUMP in have:
            sites.append(DumpSite(directory / RHEL_DUMP, "kdebug"))
        return sites, claimed
    for name in sorted(names):
        m = KDUMP_TOOLS_DUMP.match(name)
        if m:
            dmesg = f"dmesg.{m.group(1)}"
            sites.append(DumpSite(directory / name, "kdump-tools",
                                  directory / dmesg if dmesg in have else None))
            claimed |= {name, dmesg}
    if KDUMP_TOOLS_INCOMPLETE in have:
        dmesgs = sorted(n for n in names if n.startswith("dmesg.") and n not in claimed)
        sites.append(DumpSite(directory / KDUMP_TOOLS_INCOMPLETE, "kdump-tools",
                              directory / dmesgs[0] if len(dmesgs) == 1 else None,
                              incomplete="kdump-tools left it as dump-incomplete: its writer did not finish"))
        claimed |= {KDUMP_TOOLS_INCOMPLETE, *dmesgs[:1]}
    for name in (RHEL_DUMP, RHEL_INCOMPLETE):
        if name in have:
            layout = "rhel-kdump" if RHEL_DMESG in have or RHEL_DIR.search(directory.name) else "file"
            sites.append(DumpSite(directory / name, layout,
                                  directory / RHEL_DMESG if RHEL_DMESG in have else None,
                                  incomplete="kdump left it as vmcore-incomplete: its writer did not finish"
                                  if name == RHEL_INCOMPLETE else ""))
            claimed |= {name, RHEL_DMESG}
    return sites, claimed


def find_dumps(root: Path) -> list[DumpSite]:
    """Every dump under ``root`` (recursively), in path order."""
    if not root.exists():
        raise UsageError(f"{root} does not exist")
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise UsageError(f"{root} is not readable")
    found: list[DumpSite] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        # Symlinked directories are followed (dumps are often linked into
        # place), each real directory once, so a link loop ends.
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames.clear()
            continue
        seen.add(real)
        dirnames.sort()
        here = Path(dirpath)
        sites, claimed = sites_in(here, filenames)
        found += sites
        for name in sorted(set(filenames) - claimed):
            p = here / name
            if p.is_file() and not (p.is_symlink() and p.resolve().is_relative_to(root.resolve())) \
                    and (named_like_dump(name) or looks_like_dump(p)):
                found.append(DumpSite(p, "file"))
    return sorted(found, key=lambda s: str(s.vmcore))


def locate(path: Path) -> DumpSite:
    """The one dump ``path`` names: a dump file (its saved log found beside
    it), or a directory holding exactly one dump at any depth."""
    if not path.exists():
        raise VmcoreError(f"{path} does not exist")
    if path.is_dir():
        sites = find_dumps(path)
        if not sites:
            raise VmcoreError(f"no dump in {path} (looked for {_WHERE})")
        if len(sites) > 1:
            raise UsageError(f"{path} holds {len(sites)} dumps: name one of them, or run `kdebug triage {path}`")
        return sites[0]
    parent = path.parent
    try:
        names = os.listdir(parent)
    except OSError:
        names = [path.name]
    for site in sites_in(parent, names)[0]:
        if site.vmcore.name == path.name:
            return site
    return DumpSite(path, "file")


# --- the saved log -----------------------------------------------------------

#: ``[    1.234567] text``, optionally after ``<level>`` (``dmesg -r``) or
#: ``<level>,seq,usec,flags;`` (/dev/kmsg); both vmcore-dmesg and
#: makedumpfile --dump-dmesg write the first form.
_DMESG_LINE = re.compile(r"^(?:<(\d+)>)?\[\s*(\d+)\.(\d+)\]\s?(.*)$")
_KMSG_LINE = re.compile(r"^(\d+),(\d+),(\d+),[^;]*;(.*)$")
#: The level a saved log does not record (printk's default, MESSAGE_LOGLEVEL_DEFAULT).
UNKNOWN_LEVEL = 4


def parse_saved_dmesg(text: str) -> list[PrintkRecord]:
    """A log saved as text -> PrintkRecords in order. Lines without a
    timestamp continue the record before them (multi-line messages)."""
    out: list[PrintkRecord] = []
    for line in text.splitlines():
        m = _DMESG_LINE.match(line)
        k = None if m else _KMSG_LINE.match(line)
        if m:
            level = int(m.group(1)) & 7 if m.group(1) else UNKNOWN_LEVEL
            ns = int(m.group(2)) * 1_000_000_000 + int(m.group(3).ljust(9, "0")[:9])
            out.append(PrintkRecord(seq=len(out), timestamp_ns=ns, level=level, text=m.group(4)))
        elif k:
            out.append(PrintkRecord(seq=int(k.group(2)), timestamp_ns=int(k.group(3)) * 1000,
                                    level=int(k.group(1)) & 7, facility=int(k.group(1)) >> 3,
                                    text=k.group(4)))
        elif out and line.strip():
            prev = out[-1]
            out[-1] = PrintkRecord(prev.seq, prev.timestamp_ns, prev.level, f"{prev.text}\n{line}",
                                   prev.facility, prev.caller)
    return out


def read_saved_dmesg(path: Path) -> list[PrintkRecord]:
    """The saved log, or VmcoreError (one line) when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise VmcoreError(f"cannot read the saved log {path}: {e.strerror}") from None
    records = parse_saved_dmesg(data.decode(errors="replace"))
    if not records:
        raise VmcoreError(f"the saved log {path} holds no kernel log lines")
    return records
