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
