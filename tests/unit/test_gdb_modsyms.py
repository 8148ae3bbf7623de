"""Module debug files and the add-symbol-file line for a module."""

from pathlib import Path

from kdebug.decode.modsyms import add_symbol_file_command, index_debug_files, module_key


def test_index_normalizes_names(tmp_path):
    (tmp_path / "kernel/drivers").mkdir(parents=True)
    (tmp_path / "kernel/drivers/virtio_pci.ko").write_bytes(b"")
    (tmp_path / "kernel/drivers/pvpanic-pci.ko").write_bytes(b"")
    (tmp_path / "extra.ko.debug").write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"")
    idx = index_debug_files(tmp_path)
    assert set(idx) == {"virtio_pci", "pvpanic_pci", "extra"}
    assert idx[module_key("pvpanic-pci")].name == "pvpanic-pci.ko"


def test_add_symbol_file_command():
    cmd = add_symbol_file_command(Path("/d/m.ko"), {".text": 0xC0001000, ".data": 0xC0004000, ".bss": 0,
                                                    ".rodata": 0xC0003000}, 0xC0000000)
    assert cmd == "add-symbol-file /d/m.ko 0xc0001000 -s .data 0xc0004000 -s .rodata 0xc0003000"
    assert add_symbol_file_command(Path("m.ko"), {}, 0xC0000000) == "add-symbol-file m.ko 0xc0000000"


def test_sections_with_addresses_get_a_copy_gdb_can_place(tmp_path):
    """gdb lays out a relocatable object's sections (and relocates its DWARF
    there) only when all of them are at address 0; with one placed section
    it puts every function at .text plus its offset. The zeroed copy is
    placed right."""
    import subprocess

    from kdebug.decode.modsyms import placed_sections, zero_addresses_argv
    from tests.conftest import need_tool

    need_tool("gcc", "objcopy", "gdb")
    (tmp_path / "m.c").write_text(
        "int kd_val = 1;\nint kd_probe(void) { return kd_val; }\n"
        "__attribute__((section(\".exit.text\"))) void kd_exit(void) { kd_val = 0; }\n")
    plain = tmp_path / "plain.ko"
    subprocess.run(["gcc", "-g", "-c", "-O0", "-o", str(plain), str(tmp_path / "m.c")], check=True, timeout=60)
    placed = tmp_path / "placed.ko"  # what Debian's 6.12 modules look like: .data carries an address
    subprocess.run(["objcopy", "--change-section-address=.data=0x40", str(plain), str(placed)], check=True,
                   timeout=60)
    assert placed_sections(plain) == [] and placed_sections(placed) == [".data"]
    fixed = tmp_path / "fixed.ko"
    subprocess.run(zero_addresses_argv(placed, fixed, placed_sections(placed)), check=True, timeout=60)
    assert placed_sections(fixed) == []

    def kd_exit_in_gdb(path: Path) -> str:
        out = subprocess.run(["gdb", "-nx", "-batch", "-ex",
                              add_symbol_file_command(path, {".exit.text": 0x200000, ".data": 0x300000}, 0x100000),
                              "-ex", "info address kd_exit"], capture_output=True, text=True, timeout=60).stdout
        return out.strip().splitlines()[-1]

    assert "at address 0x200000." in kd_exit_in_gdb(fixed)
    assert "at address 0x200000." not in kd_exit_in_gdb(placed)  # the gdb behaviour the copy works around
