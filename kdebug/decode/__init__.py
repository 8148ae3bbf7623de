"""Pure decoders shared by every engine: ELF symbol lookup, KASLR from the
IDT, kernel structures (tasks, printk ring, modules) from raw bytes and
offsets, breakpoint presets. Imported inside gdb (gdb_scripts/) and on the host."""
