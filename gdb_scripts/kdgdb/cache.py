"""Caches of the gdb layer: per symbol file (types, offsets, layouts: gone
when gdb.events.new_objfile / clear_objfiles fire) and per stop (what the
target changes when it runs: gone on gdb.events.cont)."""

from __future__ import annotations

import gdb

_types: dict = {}
_stop: dict = {}


def forget_types(_event=None) -> None:
    """Forget everything: a symbol file came or went."""
    _types.clear()
    _stop.clear()


def forget_stop(_event=None) -> None:
    """Forget what was read at this stop (the target ran, or its memory source changed)."""
    _stop.clear()


def forget(key) -> None:
    """Forget one per-objfile entry."""
    _types.pop(key, None)


gdb.events.new_objfile.connect(forget_types)
gdb.events.clear_objfiles.connect(forget_types)
gdb.events.cont.connect(forget_stop)


def cached(key, compute):
    """Per-objfile cache (types, offsets, layouts)."""
    try:
        return _types[key]
    except KeyError:
        v = _types[key] = compute()
        return v


def per_stop(key, compute):
    """Per-stop cache (tasks, per-cpu offsets)."""
    try:
        return _stop[key]
    except KeyError:
        v = _stop[key] = compute()
        return v
