"""Module debug info for gdb (pure): find each module's debug .ko and build
the add-symbol-file command from the section addresses the kernel reports
(``struct module_sect_attrs``, what /sys/module/NAME/sections shows)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from kdebug.decode.elfsyms import parse_sections


def module_key(name: str) -> str:
    """Module names use '_' where file names may use '-'."""
    return name.replace("-", "_")


def index_debug_files(root: Path) -> dict[str, Path]:
    """{module name: path} of every *.ko (or *.ko.debug) under ``root``."""
    out: dict[str, Path] = {}
    for d, _dirs, files in os.walk(root):
        for f in files:
            for suffix in (".ko", ".ko.debug"):
                if f.endswith(suffix):
                    out.setdefault(module_key(f[: -len(suffix)]), Path(d) / f)
    return out


def add_symbol_file_command(path: Path, sections: dict[str, int], base: int) -> str:
    """add-symbol-file for a module: .text positional (the core base when the
    kernel did not list it), every other loaded section with -s."""
    text = sections.get(".text") or base
    parts = [f"add-symbol-file {path} {text:#x}"]
    for name, addr in sorted(sections.items()):
        if name != ".text" and addr:
            parts.append(f"-s {name} {addr:#x}")
    return " ".join(parts)


# gdb places the sections of a relocatable object itself, and applies the
# object's DWARF relocations against those places, only when every section
# of the file has address 0 (gdb/symfile.c default_symfile_offsets()).
# Otherwise it relocates the DWARF as if each section sat at 0 and adds the
# .text offset to everything: a function in .exit.text or .init.text, or a
# variable in .data, lands at .text plus its offset in its own section.
# Debian's 6.12 modules (unlike its 6.1 ones) come out of the kernel's
# module link with addresses on .data and __patchable_function_entries, so
# gdb gets a copy with those addresses zeroed.


def placed_sections(path: Path) -> list[str]:
    """Allocated sections of a module object that carry a nonzero address."""
    with open(path, "rb") as f:
        def read_at(off: int, size: int) -> bytes:
            f.seek(off)
            return f.read(size)

        return [s.name for s in parse_sections(read_at(0, 64), read_at) if s.alloc and s.addr]


def zero_addresses_argv(src: Path, dst: Path, names: list[str]) -> list[str]:
    """objcopy command writing ``dst``: ``src`` with those sections at address 0."""
    return ["objcopy", *(f"--change-section-address={n}=0" for n in names), str(src), str(dst)]


def placeable_copy_name(src: Path) -> str:
    """A cache file name for ``src``'s copy: changes when the file does."""
    st = src.stat()
    key = hashlib.sha256(f"{src.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return f"{module_key(src.name.split('.ko')[0])}-{key}.ko"
