"""kdebug: Linux kernel debugging one command away.

The Python API (``kdebug.boot``, ``kdebug.capture``, ``kdebug.postmortem``,
``kdebug.open_dump``) lives in :mod:`kdebug.api`; it is imported on first
use, so ``import kdebug`` stays light (gdb's Python imports this package too).
"""

__version__ = "0.1.0"

_API = ("boot", "capture", "postmortem", "open_dump", "Guest", "Gdb", "BootOptions")


def __getattr__(name: str):
    if name in _API:
        # Imported by name on first use: every submodule import (gdb's Python
        # imports kdebug.gdb_scripts) runs this file, and must not pull in the
        # API's engines. The API itself is a layer of its own (pyproject.toml).
        import importlib

        return getattr(importlib.import_module("kdebug.api"), name)
    raise AttributeError(f"module 'kdebug' has no attribute {name!r}")


__all__ = ["__version__", *_API]
