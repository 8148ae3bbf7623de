"""Pure pieces of live debugging: ELF symbol lookup, KASLR from the IDT,
decoders of kernel structures from raw bytes + offsets, breakpoint presets.
Imported by gdb_scripts/ inside gdb and by kdebug.attach on the host."""
