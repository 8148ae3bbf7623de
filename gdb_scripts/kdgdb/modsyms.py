"""kd-symbols: debug info of loaded modules, followed as modules come and go."""

from __future__ import annotations

from pathlib import Path

import gdb

from kdebug.decode.modsyms import add_symbol_file_command, index_debug_files, module_key

from . import core

_state: dict = {"dirs": [], "index": None, "loaded": {}}  # loaded: name -> text address


def _index() -> dict[str, Path]:
    if _state["index"] is None:
        idx: dict[str, Path] = {}
        for d in _state["dirs"]:
            for k, v in index_debug_files(Path(d)).items():
                idx.setdefault(k, v)
        _state["index"] = idx
    return _state["index"]


def module_sections(mod: gdb.Value) -> dict[str, int]:
    """Section name -> address of a ``struct module`` (from its sect_attrs)."""
    sa = mod["sect_attrs"]
    if int(sa) == 0:
        return {}
    sa = sa.dereference()
    attrs = sa["attrs"]
    return {attrs[i]["battr"]["attr"]["name"].string(): int(attrs[i]["address"])
            for i in range(int(sa["nsections"]))}


def load_module(mod: gdb.Value) -> str | None:
    """Load one module's symbols; the message, or None when already loaded."""
    name = mod["name"].string()
    path = _index().get(module_key(name))
    if path is None:
        return f"kd-symbols: no debug file for {name}"
    from .modules import module_layout

    base = core.u64(int(mod.address) + module_layout().core_base.offset)
    secs = module_sections(mod)
    text = secs.get(".text") or base
    if _state["loaded"].get(name) == text:
        return None
    if name in _state["loaded"]:
        gdb.execute(f"remove-symbol-file -a {_state['loaded'][name]:#x}", to_string=True)
    gdb.execute(add_symbol_file_command(path, secs, base), to_string=True)
    _state["loaded"][name] = text
    return f"kd-symbols: {name} at {text:#x} from {path}"


def unload_module(mod: gdb.Value) -> None:
    name = mod["name"].string()
    addr = _state["loaded"].pop(name, None)
    if addr is not None:
        gdb.execute(f"remove-symbol-file -a {addr:#x}", to_string=True)


def all_modules():
    from .modules import module_layout

    if not core.has_symbol("modules"):
        return
    mtype = core.lookup_type("struct module").pointer()
    head = core.symbol_address("modules")
    off = module_layout().list_next.offset
    nxt = core.u64(head)
    while nxt != head:
        yield gdb.Value(nxt - off).cast(mtype).dereference()
        nxt = core.u64(nxt)


class _Follow(gdb.Breakpoint):
    """Internal breakpoint that (un)loads a module's symbols and goes on."""

    def __init__(self, spec: str, load: bool):
        super().__init__(spec, internal=True)
        self.silent = True
        self._load = load

    def stop(self):
        try:
            mod = gdb.parse_and_eval("mod").dereference()
            if self._load:
                msg = load_module(mod)
                if msg:
                    gdb.write(msg + "\n")
            else:
                unload_module(mod)
        except gdb.error as e:
            gdb.write(f"kd-symbols: {e}\n")
        return False


_follow: list = []


@core.register
class KdSymbols(core.Command):
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
            out = [m for m in (load_module(mod) for mod in all_modules()) if m]
        except (gdb.MemoryError, gdb.GdbError):
            out = ["kd-symbols: the kernel is not up yet (no module list)"]
        if a.follow and not _follow:
            _follow.append(_Follow("do_init_module", load=True))
            _follow.append(_Follow("free_module", load=False))
            out.append("kd-symbols: following module loads and unloads")
        loaded = len(_state["loaded"])
        out.append(f"kd-symbols: {loaded} module{'s' if loaded != 1 else ''} with symbols")
        return "\n".join(out)
