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
