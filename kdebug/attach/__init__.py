"""`kdebug attach`: gdb on a running guest (QEMU's gdbstub or the kernel's
KGDB), symbols at the KASLR offset, the kd- commands loaded."""
