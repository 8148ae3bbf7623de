"""kdebug's gdb layer: thin commands over kdebug.kgdb's pure decoders."""

from kdgdb import backtrace, breaks, dmesg, functions, info, modules, symbols, tasks  # noqa: F401
