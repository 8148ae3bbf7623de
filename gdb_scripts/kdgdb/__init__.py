"""kdebug's gdb layer: thin commands over kdebug.decode's pure decoders.

Layers, each importing only those below it (pyproject.toml's import-linter
contract holds them): the commands (breaks over backtrace, over dmesg,
functions, info, modsyms, symbols); cpus; tasks and modules; memory; debuginfo (types
and symbols); cache and command (the frame every command shares)."""

from . import backtrace, breaks, dmesg, functions, info, modsyms, modules, symbols, tasks  # noqa: F401
