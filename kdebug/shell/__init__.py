"""`kdebug shell`: drgn, crash or gdb over any dump or live guest, each with
the vmlinux and module debug info found for it."""
