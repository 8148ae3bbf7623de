"""A dump's identity for the crash database (pure: standard library only).

Not a full sha256: drgn reads a 512 MiB dump in about 0.5 s, and hashing all
of it costs as much again (0.4-0.55 s measured here), more on the multi-GiB
dumps of real machines. The fingerprint reads a fixed ~5 MiB instead: the
size, the first MiB (ELF or kdump headers and notes: VMCOREINFO with the
KASLR offset and, for kdump, CRASHTIME, and every CPU's registers at the
crash) and 64 blocks spread over the rest. Two crashes differ there; a copy
of a dump, under any name, is the same dump.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: Stored with the digest, so a change of method never matches old rows.
METHOD = "fp1"
HEAD = 1 << 20
BLOCK = 64 << 10
SAMPLES = 64


def fingerprint(path: Path | str) -> str:
    """``fp1:<sha256 hex>`` of the dump's size, head and sampled blocks
    (OSError when it cannot be read)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        h.update(size.to_bytes(8, "little"))
        h.update(f.read(HEAD))
        if size > HEAD:
            step = max(BLOCK, (size - HEAD) // SAMPLES)
            for off in range(HEAD, size, step):
                f.seek(off)
                h.update(f.read(BLOCK))
            f.seek(max(HEAD, size - BLOCK))  # the tail: a dump cut short differs
            h.update(f.read(BLOCK))
    return f"{METHOD}:{h.hexdigest()}"
