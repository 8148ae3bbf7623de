"""kdebug's gdb layer: thin commands over kdebug.decode's pure decoders."""

from . import backtrace, breaks, dmesg, functions, info, modsyms, modules, symbols, tasks  # noqa: F401
