"""Golden list of what the hello recipe puts in an initramfs (host-independent)."""

from pathlib import Path

from kdebug.initramfs.build import build_initramfs
from kdebug.initramfs.cpio import list_cpio
from kdebug.initramfs.recipe import load_recipe
from tests.conftest import need_tool

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden" / "initramfs-hello.txt"


def test_hello_file_list(default_kernel):
    need_tool("gcc")
    import gzip

    res = build_initramfs(load_recipe("hello"), default_kernel)
    listing = "".join(f"{mode:06o} {name}\n" for name, mode, _ in list_cpio(gzip.decompress(res.path.read_bytes())))
    if not GOLDEN.exists():
        GOLDEN.write_text(listing)
    assert listing == GOLDEN.read_text()


def test_runtime_dir_is_private(tmp_path, monkeypatch):
    import os

    from kdebug.paths import runtime_dir

    monkeypatch.setenv("KDEBUG_RUNTIME_DIR", str(tmp_path / "rt"))
    d = runtime_dir()
    assert os.stat(d).st_mode & 0o777 == 0o700
