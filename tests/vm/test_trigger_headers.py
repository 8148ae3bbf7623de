"""The trigger module on every installed kernel generation: its headers are
found, and a kernel without headers is refused naming the exact package."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

from tests.conftest import need


def test_headers_of_each_generation_are_found(kernel):
    from kdebug.capture.module import headers_dir

    pkg = f"linux-headers-{kernel.release}"
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", pkg], capture_output=True, text=True)
    need("install ok installed" in r.stdout, f"{pkg} is not installed (scripts/setup.sh installs it)")
    d = headers_dir(kernel)
    # the truth: the directory dpkg installed for that package
    files = subprocess.run(["dpkg-query", "-L", pkg], capture_output=True, text=True).stdout.split()
    assert str(d.resolve()) in files


def test_missing_headers_name_the_package(kernel, tmp_path):
    from kdebug.capture.module import headers_dir
    from kdebug.errors import ToolMissing

    # the same packaged image under a release nothing is installed for
    absent = dataclasses.replace(kernel, release="0.0.0-kdebug-no-headers-amd64")
    with pytest.raises(ToolMissing) as e:
        headers_dir(absent)
    assert "install linux-headers-0.0.0-kdebug-no-headers-amd64" in str(e.value)
    # an image no package owns: no package to name, the tree is the way
    image = tmp_path / "bzImage"
    image.write_bytes(kernel.image.read_bytes())
    with pytest.raises(ToolMissing) as e:
        headers_dir(dataclasses.replace(absent, image=image))
    assert "not from a Debian package" in str(e.value) and "linux-headers" not in str(e.value)
