"""kdump with a small built capture kernel instead of the crashed one:
the dump is still the crashed kernel's, and it fits where the cloud kernel
ran out of memory (64M, below the 80M floor the CLI keeps)."""

from __future__ import annotations

import re

from kdebug.capture.plan import UNSAFE_CRASHKERNEL_ENV, CaptureOptions
from kdebug.kbuild import built_tree
from kdebug.plan.prepare import LaunchOptions
from kdebug.vmcore.info import read_dump
from tests.conftest import need, need_tool


def test_small_capture_kernel_dumps_the_crashed_one(kernel, tmp_path, monkeypatch):
    need_tool("qemu-system-x86_64", "makedumpfile", "kexec")
    tree = built_tree()
    need(tree is not None, "the debug tree is not built (scripts/setup.sh)")
    from kdebug.capture.api import capture

    monkeypatch.setenv(UNSAFE_CRASHKERNEL_ENV, "64M")
    out = tmp_path / "c"
    cap = capture(LaunchOptions(release=kernel.release), CaptureOptions(out=out, capture_kernel=str(tree)))
    assert cap.ok and cap.capture_kernel["source"] == "tree"
    release = (tree / "include/config/kernel.release").read_text().strip()
    assert cap.capture_kernel["release"] == release != kernel.release
    # The capture kernel's own banner, and the crashed kernel's dump.
    log = (out / "console-capture.log").read_text()
    assert re.search(rf"Linux version {re.escape(release)} ", log)
    info = read_dump(out / "vmcore")
    assert info.complete and info.release == kernel.release and info.build_id == kernel.build_id
    assert cap.check and cap.check["complete"]
