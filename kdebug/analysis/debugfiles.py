"""drgn searches where kdebug searches: the debug directories and kdebug's
cache of kdebug.vmcore.search, and kdebug's debuginfod client (downloads
verified by build-id and cached) instead of drgn's own (libdebuginfod, with
its own cache and no check kdebug can report).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import drgn

from kdebug.vmcore.search import DebugSearch

FINDER = "kdebug-debuginfod"


def configure(prog: drgn.Program, search: DebugSearch) -> None:
    """Point ``prog``'s debug info search at ``search``'s directories and
    servers (modules: by build-id, by name under the debug directories,
    then fetched)."""
    opts = prog.debug_info_options
    opts.directories = tuple(str(d) for d in search.directories())
    finders = [f for f in prog.enabled_debug_info_finders() if f != "debuginfod"]
    if search.urls:

        def fetch_modules(modules: Sequence[drgn.Module]) -> None:
            for m in modules:
                if m.wants_debug_file() and m.build_id and isinstance(m, drgn.RelocatableModule):
                    path = search.fetch_module(m.name, m.build_id.hex())
                    if path is not None:
                        m.try_file(str(path))

        prog.register_debug_info_finder(FINDER, fetch_modules)
        finders.append(FINDER)
    prog.set_enabled_debug_info_finders(finders)


def dump_modules(dump_path: Path, vmlinux: Path) -> list[tuple[str, str | None]]:
    """(name, build-id) of each module loaded in the dump, as its
    ``struct module`` notes say (the vmlinux's debug info walks the list)."""
    prog = drgn.Program()
    prog.set_core_dump(str(dump_path))
    prog.set_enabled_debug_info_finders([])
    prog.main_module("kernel", create=True).try_file(str(vmlinux))
    out = []
    for m, _new in prog.loaded_modules():
        if isinstance(m, drgn.RelocatableModule):
            out.append((m.name, m.build_id.hex() if m.build_id else None))
    return sorted(out)
