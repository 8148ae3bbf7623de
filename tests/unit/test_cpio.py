import gzip
import shutil
import stat
import subprocess

from kdebug.initramfs.cpio import Archive, concat, list_cpio
from tests.conftest import need


def sample() -> Archive:
    a = Archive()
    a.add_node("dev/console", "c", 5, 1)
    a.add_file("init", b"#!/bin/sh\necho hi\n", 0o755)
    a.add_file("etc/deep/file", b"abc")
    a.add_symlink("bin/sh", "/bin/busybox")
    return a


def test_parents_come_first_and_types_are_right():
    names = sample().to_cpio()
    listed = list_cpio(names)
    order = [n for n, _, _ in listed]
    assert order.index("etc") < order.index("etc/deep") < order.index("etc/deep/file")
    modes = {n: m for n, m, _ in listed}
    assert stat.S_ISCHR(modes["dev/console"])
    assert stat.S_ISLNK(modes["bin/sh"])
    assert modes["init"] & 0o777 == 0o755


def test_gnu_cpio_reads_our_archive(tmp_path):
    # Independent truth: GNU cpio lists and extracts what we wrote.
    need(shutil.which("cpio") is not None, "cpio is not installed")
    data = sample().to_cpio_gz()
    r = subprocess.run(["cpio", "-it", "--quiet"], input=gzip.decompress(data), capture_output=True)
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.decode().split()) == {"dev", "dev/console", "init", "etc", "etc/deep",
                                              "etc/deep/file", "bin", "bin/sh"}
    r = subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames"], cwd=tmp_path,
                       input=gzip.decompress(data), capture_output=True)
    assert (tmp_path / "etc/deep/file").read_bytes() == b"abc"
    assert (tmp_path / "bin/sh").readlink().as_posix() == "/bin/busybox"


def test_concat_aligns_each_member():
    a = b"x" * 5
    b = b"y" * 7
    out = concat([a, b, b"z"])
    assert out.index(b"y") % 4 == 0
    assert out.index(b"z") % 4 == 0


def test_deterministic():
    assert sample().to_cpio_gz() == sample().to_cpio_gz()


def test_rejects_escaping_paths():
    import pytest

    with pytest.raises(ValueError):
        Archive().add_file("../etc/passwd", b"")
