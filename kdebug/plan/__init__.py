"""Boot a kernel under QEMU: plan -> kernel cmdline -> QEMU argv (pure) -> guest."""
