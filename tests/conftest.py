"""Shared test plumbing: tiers by folder, strict tool checks in CI, one shared guest."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
#: Set by .ci/run: a missing tool fails the test instead of skipping it.
STRICT = os.environ.get("KDEBUG_REQUIRE_TOOLS") == "1"


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in ("unit", "vm", "gdb", "vmcore"):
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


def need(condition: bool, why: str) -> None:
    """Skip (or, in CI, fail) when something the test needs is missing."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"required for this test: {why} (KDEBUG_REQUIRE_TOOLS=1)")
    pytest.skip(why)


def need_tool(*names: str) -> None:
    for n in names:
        need(shutil.which(n, path="/usr/sbin:/usr/bin:/sbin:/bin:" + os.environ.get("PATH", ""))
             is not None, f"{n} is not installed (run scripts/setup.sh)")


@pytest.fixture(scope="session")
def default_kernel():
    from kdebug.errors import KdebugError
    from kdebug.kernel import find_kernel

    try:
        return find_kernel()
    except KdebugError as e:
        need(False, f"no default kernel: {e}")


@pytest.fixture(scope="session")
def shared_guest(default_kernel, tmp_path_factory):
    """One booted default kernel (busybox recipe, crashkernel=128M) shared by
    the read-only VM tests: booting under TCG costs ~5 s each."""
    need_tool("qemu-system-x86_64")
    from kdebug.guest.qemu import boot
    from kdebug.guest.session import new_session
    from kdebug.plan.prepare import LaunchOptions, prepare
    from tests.gdb.live import threads_helper

    session = new_session()
    # kd-threads: a multi-threaded process for the live gdb tests' truth
    prep = prepare(LaunchOptions(crashkernel="128M", extra_files=threads_helper()), session)
    guest = boot(prep.plan, session, timeout=120)
    guest.prepared = prep
    yield guest
    guest.poweroff()
    session.remove()


def qemu_pids_for(marker: str | None = None, parent: int | None = None) -> list[int]:
    """QEMU processes whose command line contains ``marker`` and/or whose parent is ``parent``."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            stat = (d / "stat").read_text() if parent is not None else ""
        except OSError:
            continue
        if b"qemu-system" not in cmd or (marker is not None and marker.encode() not in cmd):
            continue
        if parent is not None and int(stat.rsplit(")", 1)[1].split()[1]) != parent:
            continue
        pids.append(int(d.name))
    return pids
