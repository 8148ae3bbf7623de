"""kd-symbols: debug info of loaded modules, followed as modules come and go."""

from __future__ import annotations

import subprocess
from pathlib import Path

import gdb

from kdebug.decode.modsyms import (
    add_symbol_file_command,
    index_debug_files,
    module_key,
    placeable_copy_name,
    placed_sections,
    zero_addresses_argv,
)
from kdebug.decode.modules import RawModule, module_sections
from kdebug.paths import cache_dir

from .command import Command, register
from .memory import read, u64
from .modules import for_each_module, layout, read_module

_state: dict = {"dirs": [], "index": None, "loaded": {}}  # loaded: name -> text address


def _index() -> dict[str, Path]:
    if _state["index"] is None:
        idx: dict[str, Path] = {}
        for d in _state["dirs"]:
            for k, v in index_debug_files(Path(d)).items():
                idx.setdefault(k, v)
        _state["index"] = idx
    return _state["index"]


def debug_file(name: str) -> Path | None:
    """The debug file of module ``name`` in the `kd-symbols --dir` directories."""
    return _index().get(module_key(name))


def placeable(path: Path) -> tuple[Path, str | None]:
    """The file gdb can place section by section (kdebug.decode.modsyms): the
    debug file itself, or a cached copy with its section addresses zeroed;
    and a warning when no such copy could be made."""
    names = placed_sections(path)
    if not names:
        return path, None
    out = cache_dir("gdb-modules") / placeable_copy_name(path)
    if out.exists():
        return out, None
    tmp = out.with_suffix(".tmp")
    try:
        r = subprocess.run(zero_addresses_argv(path, tmp, names), capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        r = None
        err = str(e)
    else:
        err = r.stderr.strip().splitlines()[-1] if r.returncode and r.stderr.strip() else f"exit {r.returncode}"
    if r is None or r.returncode:
        tmp.unlink(missing_ok=True)
        return path, (f"kd-symbols: cannot copy {path.name} for gdb ({err}): symbols outside .text "
                      "are misplaced (install binutils)")
    tmp.replace(out)
    return out, None


def load_module(raw: RawModule) -> str | None:
    """Load one module's symbols; the message, or None when already loaded."""
    name = raw.name
    path = _index().get(module_key(name))
    if path is None:
        return f"kd-symbols: no debug file for {name}"
    secs = module_sections(raw, layout(), read, u64)
    text = secs.get(".text") or raw.text_base
    if _state["loaded"].get(name) == text:
        return None
    if name in _state["loaded"]:
        gdb.execute(f"remove-symbol-file -a {_state['loaded'][name]:#x}", to_string=True)
    usable, warning = placeable(path)
    gdb.execute(add_symbol_file_command(usable, secs, raw.text_base), to_string=True)
    _state["loaded"][name] = text
    msg = f"kd-symbols: {name} at {text:#x} from {path}"
    return f"{warning}\n{msg}" if warning else msg


def unload_module(raw: RawModule) -> None:
    addr = _state["loaded"].pop(raw.name, None)
    if addr is not None:
        gdb.execute(f"remove-symbol-file -a {addr:#x}", to_string=True)


class _Follow(gdb.Breakpoint):
    """Internal breakpoint that (un)loads a module's symbols and goes on."""

    def __init__(self, spec: str, load: bool):
        super().__init__(spec, internal=True)
        self.silent = True
        self._load = load

    def stop(self):
        try:
            raw = read_module(int(gdb.parse_and_eval("mod")))
            if self._load:
                msg = load_module(raw)
                if msg:
                    gdb.write(msg + "\n")
            else:
                unload_module(raw)
        except gdb.error as e:
            gdb.write(f"kd-symbols: {e}\n")
        return False


_follow: list = []


@register
class KdSymbols(Command):
    """Load debug info of loaded modules; --follow keeps up with insmod/rmmod.

    Usage: kd-symbols [--dir DIR]... [--follow]   (DIR: module debug files, searched recursively)"""

    name = "kd-symbols"

    def arguments(self, p):
        p.add_argument("--dir", action="append", default=[], help="where the modules' debug .ko files are")
        p.add_argument("--follow", action="store_true", help="also on module load/unload while the guest runs")

    def run(self, a):
        if a.dir:
            _state["dirs"] = list(dict.fromkeys(_state["dirs"] + a.dir))
            _state["index"] = None
        if not _state["dirs"]:
            raise gdb.GdbError("kd-symbols: no module debug directory (use --dir DIR)")
        try:
            out = [m for m in (load_module(raw) for raw in for_each_module()) if m]
        except (gdb.MemoryError, gdb.GdbError):
            out = ["kd-symbols: the kernel is not up yet (no module list)"]
        if a.follow and not _follow:
            _follow.append(_Follow("do_init_module", load=True))
            _follow.append(_Follow("free_module", load=False))
            out.append("kd-symbols: following module loads and unloads")
        loaded = len(_state["loaded"])
        out.append(f"kd-symbols: {loaded} module{'s' if loaded != 1 else ''} with symbols")
        return "\n".join(out)
