"""Dumps for the vmcore tier, made once per test run: a QEMU ELF dump of a
sysrq-c crash and of an unknown-NMI panic (tests/vmcore/dumps.py), and a kdump
(kdump-compressed) dump of a module's NULL-pointer oops via kdebug capture."""

from __future__ import annotations

import pytest

from tests.conftest import need_tool, removed


@pytest.fixture(autouse=True)
def _on_each_kernel(kernel_env):
    """Every test here runs once per kernel generation (tests/conftest.py)."""


@pytest.fixture(scope="session")
def qemu_dump(tmp_path_factory, kernel):
    """qemu_dump(trigger) -> DumpFacts, each dump made once."""
    need_tool("qemu-system-x86_64")
    from tests.vmcore.dumps import make_qemu_dump

    cache, dirs = {}, []

    def get(trigger: str):
        if trigger not in cache:
            dirs.append(tmp_path_factory.mktemp(f"qemu-{trigger}"))
            cache[trigger] = make_qemu_dump(dirs[-1], trigger, release=kernel.release)
        return cache[trigger]
    yield get
    removed(*dirs)


@pytest.fixture(scope="session")
def kdump_oops(tmp_path_factory, kernel):
    """A kdump capture directory (vmcore + capture.json) of a NULL-pointer oops."""
    need_tool("qemu-system-x86_64", "makedumpfile")
    from kdebug.capture.api import capture
    from kdebug.capture.plan import CaptureOptions
    from kdebug.plan.prepare import LaunchOptions

    out = tmp_path_factory.mktemp("kdump-oops") / "cap"
    yield capture(LaunchOptions(release=kernel.release, crashkernel="auto"),
                  CaptureOptions(method="kdump", trigger="oops", out=out))
    removed(out.parent)


@pytest.fixture(scope="session")
def crash_sys(tmp_path_factory):
    """crash_sys(path, crash=None) -> crash's own ``sys`` output for the dump,
    or None when it cannot open it (crash run by hand, once per dump and
    binary). ``crash`` None: every crash on this host (kdebug's build, PATH's,
    the system's) until one opens it."""
    need_tool("crash")
    import subprocess
    from pathlib import Path

    from kdebug.paths import tool_candidates
    from kdebug.vmcore.locate import open_dump

    cache: dict[tuple[str, str], str | None] = {}

    def one(path, crash: str) -> str | None:
        if (str(path), crash) not in cache:
            d = tmp_path_factory.mktemp("crash-sys")
            (d / "cmds").write_text(f"sys > {d}/sys.txt\nquit\n")
            dump = open_dump(Path(path))
            subprocess.run([crash, "-s", str(dump.vmlinux), str(dump.path), "-i", str(d / "cmds")],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
            out = d / "sys.txt"
            cache[(str(path), crash)] = out.read_text() if out.exists() else None
        return cache[(str(path), crash)]

    def get(path, crash: str | None = None) -> str | None:
        if crash is not None:
            return one(path, crash)
        return next((s for c in tool_candidates("crash") if (s := one(path, str(c))) is not None), None)
    return get


@pytest.fixture(scope="session")
def report_of():
    """report_of(path, crash=bool) -> Report, each built once."""
    from kdebug.postmortem.build import postmortem

    cache = {}

    def get(path, crash: bool = False):
        key = (str(path), crash)
        if key not in cache:
            if crash:
                need_tool("crash")
            cache[key] = postmortem(path, crash=crash)
        return cache[key]
    return get
