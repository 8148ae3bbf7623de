"""Out-of-tree modules a capture gives the guest (``--add m.ko:/m.ko``, the
trigger module), recorded with their build-ids and kept beside the dump so
that a report on it gets their functions' files and lines."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kdebug.elf import FormatError, file_module

#: Beside the dump: copies of the out-of-tree modules the guest was given.
MODULES_DIR = "modules"


def keep_modules(files: dict[str, Path], out: Path) -> list[dict]:
    """Record each kernel module among the files given to the guest
    (``guest path -> host path``) with its build-id, and keep a copy of it in
    ``out/modules/``: a report on the dump pairs the loaded module with it by
    build-id and gets its functions' files and lines."""
    kept: list[dict] = []
    for guest, host in files.items():
        try:
            if not host.is_file():
                continue
            mod = file_module(host)
        except (OSError, FormatError):
            continue  # not a module: a program, a script, data
        d = out / MODULES_DIR
        d.mkdir(mode=0o700, exist_ok=True)
        copy = d / host.name
        n = 1
        while copy.exists():  # two modules with one file name from two places
            n += 1
            copy = d / f"{host.stem}-{n}{host.suffix}"
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f, open(host, "rb") as src:
            shutil.copyfileobj(src, f)
        kept.append({"name": mod.name or host.name.split(".")[0], "guest": "/" + guest.lstrip("/"),
                     "host": str(host.resolve()), "file": f"{MODULES_DIR}/{copy.name}",
                     "build_id": mod.build_id, "vermagic": mod.vermagic})
    return kept
