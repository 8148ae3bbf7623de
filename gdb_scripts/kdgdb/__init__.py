"""kdebug's gdb layer: thin commands over kdebug.kgdb's pure decoders."""

from kdgdb import backtrace, breaks, dmesg, functions, info, modsyms, modules, symbols, tasks  # noqa: F401
