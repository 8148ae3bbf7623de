"""Shared test plumbing: tiers by folder, strict tool checks in CI, one shared guest."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
#: Set by .ci/run: a missing tool fails the test instead of skipping it.
STRICT = os.environ.get("KDEBUG_REQUIRE_TOOLS") == "1"
#: The suite's guests boot (what most tests check is the boot and what follows
#: it); tests/vm/test_warm.py turns warm starts (kdebug.warm) back on in its
#: own state directory, and compares them with cold boots.
os.environ.setdefault("KDEBUG_WARM", "0")
#: A suite started in the background of a script (`cmd &`, nohup) inherits
#: SIGINT ignored, and so would every kdebug it starts: the Ctrl-C tests
#: would then wait out their timeouts. A kdebug a user runs has the default.
#: A handler of ours (not SIG_IGN) is reset to the default across exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header(config):
    """The suite writes dumps of 0.5 GB (several at once): say the room it has."""
    where = tempfile.gettempdir()  # where pytest puts its basetemp
    return f"kdebug: {shutil.disk_usage(where).free / 2**30:.1f} GiB free in {where}"


def removed(*paths: Path) -> None:
    """A fixture's teardown: its dumps go as soon as no test needs them
    (pytest keeps a passing run's files until the run ends)."""
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)


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
    """The kernel kdebug boots when none is named (unit tests that read files)."""
    from kdebug.errors import KdebugError
    from kdebug.kernel import find_kernel

    try:
        return find_kernel()
    except KdebugError as e:
        need(False, f"no default kernel: {e}")


def kernel_generations() -> list[str]:
    """The newest installed distro release of each kernel generation (6.1,
    6.12, ...) with its debug vmlinux; KDEBUG_TEST_KERNELS=6.1,6.12 narrows it."""
    from kdebug.kernel import distro_kernels

    newest: dict[str, str] = {}
    for release, _, vmlinux in distro_kernels():  # newest first
        gen = ".".join(release.split(".")[:2]).split("-")[0]
        if vmlinux is not None and gen not in newest:
            newest[gen] = release
    wanted = [w for w in os.environ.get("KDEBUG_TEST_KERNELS", "").split(",") if w]
    return [r for g, r in newest.items() if not wanted or g in wanted]


def pytest_generate_tests(metafunc):
    """The vm, gdb and vmcore tiers run once per kernel generation (the
    ``kernel`` fixture); a test marked ``one_kernel`` runs on the default only
    (it boots a build tree or checks something no kernel changes)."""
    if "kernel" not in metafunc.fixturenames:
        return
    gens = kernel_generations()
    if metafunc.definition.get_closest_marker("one_kernel"):
        from kdebug.kernel import metapackage_release

        gens = [r for r in gens if r == metapackage_release()] or gens[:1]
    ids = [".".join(r.split(".")[:2]).split("-")[0] for r in gens]
    metafunc.parametrize("kernel", gens or [None], ids=ids or ["none"], indirect=True, scope="session")


@pytest.fixture(scope="session")
def kernel(request):
    """An installed distro kernel (one per generation, see pytest_generate_tests)."""
    from kdebug.errors import KdebugError
    from kdebug.kernel import find_kernel

    if request.param is None:
        need(False, "no distro kernel with its debug vmlinux is installed")
    try:
        return find_kernel(release=request.param)
    except KdebugError as e:
        need(False, f"kernel {request.param}: {e}")


@pytest.fixture
def kernel_env(kernel, monkeypatch):
    """What kdebug boots when a test names no kernel (in this process and in
    the CLI it starts): the generation under test. Autoused by the vm, gdb
    and vmcore tiers."""
    monkeypatch.setenv("KDEBUG_KERNEL", kernel.release)
    return kernel


#: The module the shared guest's user names (``--module``).
USER_MODULE = "pvpanic_pci"


@pytest.fixture(scope="session")
def shared_guest(kernel, tmp_path_factory):
    """One booted kernel per generation (busybox recipe, crashkernel=128M)
    shared by the read-only VM tests: booting under TCG costs ~5 s each."""
    need_tool("qemu-system-x86_64")
    from kdebug.guest.qemu import boot
    from kdebug.plan.prepare import LaunchOptions, prepare
    from kdebug.session import new_session
    from tests.gdb.live import threads_helper

    session = new_session()
    # kd-threads: a multi-threaded process for the live gdb tests' truth.
    # Devices for the recipe's drivers (a virtio disk, the ISA pvpanic), one
    # module the user names (pvpanic_pci: no device, loaded all the same):
    # the module tests then see drivers, their holders and a user's module.
    disk = tmp_path_factory.mktemp("shared") / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    prep = prepare(LaunchOptions(release=kernel.release, crashkernel="128M", extra_files=threads_helper(),
                                 drives=[disk], pvpanic=True, extra_modules=[USER_MODULE]), session)
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
