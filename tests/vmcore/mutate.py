"""Mutated copies of a real kdump-compressed dump, and the rule a report
made from one must keep (bench/fuzz.py and test_fuzz_postmortem.py).

The damage: 1-16 random bytes changed in the first 64 KiB (disk_dump_header,
kdump_sub_header with the ELF notes and VMCOREINFO, the page bitmaps).
"""

from __future__ import annotations

import random
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

WINDOW = 64 << 10


def mutate(src: Path, dst: Path, rng: random.Random) -> dict[int, int]:
    """Copy ``src`` to ``dst`` with 1-16 bytes of its first 64 KiB changed;
    the recipe (offset -> new byte)."""
    shutil.copyfile(src, dst)
    recipe: dict[int, int] = {}
    with open(dst, "r+b") as f:
        for _ in range(rng.randint(1, 16)):
            at = rng.randrange(WINDOW)
            recipe[at] = rng.randrange(256)
            f.seek(at)
            f.write(bytes([recipe[at]]))
    return recipe


@dataclass
class Layout:
    """Where a kdump-compressed dump keeps what a report's identity comes from."""

    header: range  # disk_dump_header (block 0)
    sub: range  # kdump_sub_header
    vmcoreinfo: range
    notes: range  # the ELF notes (NT_PRSTATUS per CPU, VMCOREINFO)
    bitmaps: range


def layout(path: Path) -> Layout:
    head = path.read_bytes()[:WINDOW]
    block, sub_blocks, bitmap_blocks = struct.unpack_from("<iiI", head, 428)
    vi_off, vi_size = struct.unpack_from("<qQ", head, block + 32)
    note_off, note_size = struct.unpack_from("<qQ", head, block + 48)
    bitmaps = block * (1 + sub_blocks)
    return Layout(range(0, block), range(block, bitmaps), range(vi_off, vi_off + vi_size),
                  range(note_off, note_off + note_size), range(bitmaps, bitmaps + bitmap_blocks * block))


def identity(report: dict) -> dict:
    s, p = report.get("system") or {}, report.get("panic") or {}
    return {"release": s.get("release"), "build_id": s.get("build_id") or report.get("build_id"),
            "title": report.get("signature"), "reason": p.get("reason")}


def check_report(base: dict, got: dict, damage: list[int], lay: Layout) -> str | None:
    """Why a report that exited 0 differs where the damage cannot explain it
    (None: it agrees, or the damage covers what differs).

    The rule: release and build-id come from VMCOREINFO (and the utsname in
    disk_dump_header); the panic title from memory the bitmaps locate and the
    registers in the notes. Damage only elsewhere (the header's other fields,
    the sub-header's other fields) must leave all three as they were."""
    a, b = identity(base), identity(got)
    hit = lambda r: any(o in r for o in damage)  # noqa: E731
    memory = hit(lay.bitmaps) or hit(lay.notes) or hit(lay.vmcoreinfo) or hit(lay.header) or hit(lay.sub)
    for key in ("release", "build_id"):
        if a[key] != b[key] and not (hit(lay.vmcoreinfo) or hit(lay.header)):
            return f"{key} {a[key]!r} -> {b[key]!r} with VMCOREINFO and the header untouched"
    if a["title"] != b["title"] and not memory:
        return f"title {a['title']!r} -> {b['title']!r} with no damage where it comes from"
    return None
