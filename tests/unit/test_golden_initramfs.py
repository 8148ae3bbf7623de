"""Golden list of what the hello recipe puts in an initramfs (host-independent)."""


from kdebug.initramfs.build import build_initramfs
from kdebug.initramfs.cpio import list_cpio
from kdebug.initramfs.recipe import load_recipe
from tests.conftest import need_tool
from tests.golden import check_golden


def test_hello_file_list(default_kernel):
    need_tool("gcc")
    import gzip

    res = build_initramfs(load_recipe("hello"), default_kernel)
    listing = "".join(f"{mode:06o} {name}\n" for name, mode, _ in list_cpio(gzip.decompress(res.path.read_bytes())))
    check_golden("initramfs-hello.txt", listing)


def test_runtime_dir_is_private(tmp_path, monkeypatch):
    import os

    from kdebug.paths import runtime_dir

    monkeypatch.setenv("KDEBUG_RUNTIME_DIR", str(tmp_path / "rt"))
    d = runtime_dir()
    assert os.stat(d).st_mode & 0o777 == 0o700


def test_golden_check_fails_on_a_difference_or_a_missing_file(tmp_path, monkeypatch):
    import pytest

    monkeypatch.delenv("KDEBUG_UPDATE_GOLDEN", raising=False)
    (tmp_path / "g.txt").write_text("a\n")
    check_golden("g.txt", "a\n", tmp_path)
    with pytest.raises(AssertionError):
        check_golden("g.txt", "b\n", tmp_path)
    with pytest.raises(pytest.fail.Exception):
        check_golden("missing.txt", "a\n", tmp_path)
    assert not (tmp_path / "missing.txt").exists()
