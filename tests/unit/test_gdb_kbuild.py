"""kdebug kernel build: fragment checks and the cache key (no compiling here)."""

from kdebug.kbuild import DEFAULT_FRAGMENT, build_key, parse_fragment, unmet


def test_fragment_has_what_the_debugger_needs():
    frag = parse_fragment(DEFAULT_FRAGMENT.read_text())
    for opt in ("DEBUG_INFO", "GDB_SCRIPTS", "FRAME_POINTER", "KGDB", "KGDB_SERIAL_CONSOLE", "KGDB_KDB",
                "BLK_DEV_INITRD", "KEXEC", "CRASH_DUMP", "PROC_VMCORE", "MAGIC_SYSRQ", "SERIAL_8250_CONSOLE",
                "VIRTIO_PCI", "VIRTIO_BLK", "DEVTMPFS", "IKCONFIG"):
        assert frag[f"CONFIG_{opt}"] == "y", opt


def test_unmet_options():
    frag = parse_fragment("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\n")
    assert frag == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": '"x"'}
    assert unmet(frag, {"CONFIG_A": "y", "CONFIG_C": '"x"'}) == []
    assert unmet(frag, {"CONFIG_B": "y"}) == ["CONFIG_A", "CONFIG_B", "CONFIG_C"]


def test_cache_key_changes_with_fragment_and_source(tmp_path):
    src = tmp_path / "linux.tar.xz"
    src.write_bytes(b"x")
    k1 = build_key(src, "CONFIG_A=y\n", "tinyconfig")
    assert k1 == build_key(src, "CONFIG_A=y\n", "tinyconfig")
    assert k1 != build_key(src, "CONFIG_A=n\n", "tinyconfig")
    assert k1 != build_key(src, "CONFIG_A=y\n", "defconfig")
    src.write_bytes(b"xy")
    assert k1 != build_key(src, "CONFIG_A=y\n", "tinyconfig")


def test_modules_fragment_layers_on_debug():
    from kdebug.kbuild import MODULES_FRAGMENTS, fragment_path

    assert MODULES_FRAGMENTS[0] == DEFAULT_FRAGMENT == fragment_path("debug") == fragment_path("debug.config")
    assert MODULES_FRAGMENTS[-1] == fragment_path("modules")
    merged = {}
    for f in MODULES_FRAGMENTS:  # merge_config.sh: later fragments win
        merged.update(parse_fragment(f.read_text()))
    for opt in ("VIRTIO_CONSOLE", "VIRTIO_BLK", "FW_CFG_SYSFS", "PVPANIC_MMIO", "PVPANIC_PCI"):
        assert merged[f"CONFIG_{opt}"] == "m", opt
    assert merged["CONFIG_DEBUG_INFO"] == merged["CONFIG_MODULES"] == "y"
    # the same tree is the sanitizer tree: one extra kernel serves both test sets
    for opt in ("KASAN", "KFENCE", "UBSAN", "UBSAN_SHIFT", "UBSAN_BOUNDS", "PROVE_LOCKING", "DEBUG_LIST",
                "DEBUG_ATOMIC_SLEEP", "BUG"):
        assert merged[f"CONFIG_{opt}"] == "y", opt
