"""Module debug info for gdb (pure): find each module's debug .ko and build
the add-symbol-file command from the section addresses the kernel reports
(``struct module_sect_attrs``, what /sys/module/NAME/sections shows)."""

from __future__ import annotations

import os
from pathlib import Path


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
