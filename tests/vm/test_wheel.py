"""kdebug as a user installs it: a wheel in a fresh virtualenv outside the
checkout, run from another directory. Everything kdebug reads at run time
(QEMU profiles, recipes, the feature table, trigger sources, gdb scripts,
crash command files) must come with the wheel."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, need_tool

pytestmark = pytest.mark.one_kernel  # packaging does not depend on the kernel


def _run(argv: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(kdebug executable, directory to run it in) from a freshly built wheel."""
    base = tmp_path_factory.mktemp("wheel")
    # Build from a copy: setuptools leaves build/ beside the sources, and a
    # stale build/lib in the checkout would leak removed files into wheels.
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                             ".pytest_cache", ".ruff_cache", "kdebug-*"))
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
              "-w", base / "dist", src], cwd=base)
    assert r.returncode == 0, r.stderr[-3000:]
    wheel = next((base / "dist").glob("kdebug-*.whl"))
    r = _run([sys.executable, "-m", "venv", base / "venv"], cwd=base)
    assert r.returncode == 0, r.stderr
    r = _run([base / "venv/bin/python", "-m", "pip", "install", "-q", wheel], cwd=base)
    assert r.returncode == 0, r.stderr[-3000:]
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return wheel, base / "venv/bin/kdebug", elsewhere


def test_wheel_carries_every_tracked_file(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "kdebug", "launch", "gdb_scripts", "crash_ext"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    mapped = {"launch/": "kdebug/launch/", "gdb_scripts/": "kdebug/gdb_scripts/", "crash_ext/": "kdebug/crash_ext/"}
    missing = []
    for path in tracked:
        for src, dst in mapped.items():
            if path.startswith(src):
                path = dst + path[len(src):]
        if path not in names:
            missing.append(path)
    assert tracked and not missing, missing


def test_installed_kdebug_runs_outside_the_checkout(installed, kernel):
    need_tool("qemu-system-x86_64", "gdb")
    _, kdebug, cwd = installed
    where = _run([kdebug.parent / "python", "-c", "import kdebug, kdebug.resources as r; "
                  "print(kdebug.__file__); print(r.launch_path('profiles'))"], cwd=cwd)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert str(kdebug.parent.parent) in line and str(ROOT) not in line, where.stdout

    doctor = _run([kdebug, "doctor"], cwd=cwd)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert kernel.release in doctor.stdout and re.search(r"^kdump\s+yes", doctor.stdout, re.M), doctor.stdout

    run = _run([kdebug, "run", "--", "uname", "-r"], cwd=cwd)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == kernel.release

    attach = _run([kdebug, "attach", "--batch", "--ex", "kd-ps --pid 1"], cwd=cwd)
    assert attach.returncode == 0, attach.stderr[-3000:]
    # The kd- commands loaded in gdb from the wheel: pid 1 is the busybox init.
    assert re.search(r"^1\s+0\s+S\s+\d\s+0x[0-9a-f]+\s+init$", attach.stdout, re.M), attach.stdout[-2000:]
