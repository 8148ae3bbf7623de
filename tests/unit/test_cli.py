"""CLI surface: every command has help; bad input gives one line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kdebug.cli.main import cli

KDEBUG = [sys.executable, "-m", "kdebug.cli.main"]


def walk(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if hasattr(cmd, "commands"):
            yield from walk(cmd, prefix + (name,))


def test_every_command_has_help():
    runner = CliRunner()
    for path, cmd in walk(cli):
        assert cmd.help, f"{' '.join(path)} has no docstring"
        r = runner.invoke(cli, [*path, "--help"])
        assert r.exit_code == 0, r.output
        assert "Usage:" in r.output


def test_every_command_is_in_the_readme():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for path, cmd in walk(cli):
        if not hasattr(cmd, "commands"):
            assert f"kdebug {' '.join(path)}" in readme or f"kdebug {path[0]}" in readme, path


def run_kdebug(*args, env=None, timeout=60):
    return subprocess.run([*KDEBUG, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_line_error(r, code=None):
    assert r.returncode != 0
    if code is not None:
        assert r.returncode == code
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("kdebug: error:"), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "random.bin").write_bytes(os.urandom(70000))
    (d / "empty").write_bytes(b"")
    return d


def test_missing_kernel_file(files):
    msg = one_line_error(run_kdebug("run", "--kernel", str(files / "nope"), "--", "true"), 125)
    assert "does not exist" in msg


def test_random_bytes_as_kernel(files):
    msg = one_line_error(run_kdebug("run", "--kernel", str(files / "random.bin"), "--", "true"), 125)
    assert "not an x86 kernel image" in msg


def test_directory_as_kernel(files):
    msg = one_line_error(run_kdebug("doctor", "--kernel", str(files)))
    assert "not a regular file" in msg


def test_elf_vmlinux_as_kernel_names_the_fix(files):
    # Any ELF works: the check is that QEMU is never asked to boot one.
    msg = one_line_error(run_kdebug("run", "--kernel", sys.executable, "--", "true"), 125)
    assert "uncompressed ELF vmlinux" in msg and "bzImage" in msg


def test_vmlinux_from_another_build_is_refused(default_kernel):
    other = Path(sys.executable).resolve()  # an ELF with another build-id
    from kdebug.elf import file_build_id

    if file_build_id(other) is None:
        pytest.skip("python binary has no build-id")
    msg = one_line_error(run_kdebug("run", "--kernel", str(default_kernel.image), "--vmlinux", str(other),
                                    "--", "true"), 125)
    assert "does not match" in msg
    assert default_kernel.build_id in msg and file_build_id(other) in msg


def test_unknown_recipe():
    msg = one_line_error(run_kdebug("initramfs", "build", "nosuch"))
    assert "unknown initramfs recipe 'nosuch'" in msg and "busybox" in msg


def test_busy_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        msg = one_line_error(run_kdebug("run", "--gdb-port", str(port), "--", "true"), 125)
    assert f"port {port} on 127.0.0.1 is busy" in msg


def test_qemu_missing(tmp_path):
    msg = one_line_error(run_kdebug("run", "--", "true", env={"PATH": str(tmp_path)}), 125)
    assert "qemu-system-x86_64 not found" in msg


def test_crashkernel_too_small():
    msg = one_line_error(run_kdebug("run", "--crashkernel", "64M", "--", "true"), 125)
    assert "at least 80M" in msg


def test_bad_memory_value():
    msg = one_line_error(run_kdebug("run", "--memory", "lots", "--", "true"), 125)
    assert "bad memory" in msg


def test_dry_run_prints_argv_and_starts_nothing(default_kernel):
    r = run_kdebug("run", "--dry-run", "--crashkernel", "128M", "--nokaslr", "--", "true")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("qemu-system-x86_64 ")
    assert "crashkernel=128M" in r.stdout and "nokaslr" in r.stdout
    assert "-gdb tcp:127.0.0.1:" in r.stdout and " -s " not in r.stdout
    assert str(default_kernel.image) in r.stdout
    # kdebug drives this guest's shell: its /init quiets the console first,
    # and the records it cannot quiet carry timestamps (kdebug.guest.console).
    assert "kdebug.loglevel=1" in r.stdout and "printk.time=1" in r.stdout


def test_interactive_boot_keeps_the_console_loglevel(default_kernel):
    r = run_kdebug("boot", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "kdebug.loglevel" not in r.stdout and "printk.time" not in r.stdout and "console=ttyS0" in r.stdout
    # the user may ask for the console messages of a driven guest back
    r = run_kdebug("run", "--dry-run", "--append", "kdebug.loglevel=8", "--", "true")
    assert "kdebug.loglevel=8" in r.stdout and "kdebug.loglevel=1" not in r.stdout


def test_every_command_module_is_in_the_lazy_table():
    """kdebug imports a command's module only when it runs: the table must
    name every command that the modules define, and only those."""
    import importlib
    import pkgutil

    import kdebug.cli
    from kdebug.cli.main import COMMAND_MODULES

    defined = {}
    for info in pkgutil.iter_modules(kdebug.cli.__path__):
        for c in getattr(importlib.import_module(f"kdebug.cli.{info.name}"), "COMMANDS", ()):
            defined[c.name] = info.name
    assert defined == COMMAND_MODULES


def test_run_imports_only_its_own_command_module():
    import json
    import subprocess
    import sys

    code = ("import json, sys; from kdebug.cli.main import cli; cli.get_command(None, 'run'); "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('kdebug.', 'drgn')))))")
    mods = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     check=True).stdout)
    assert [m for m in mods if m.startswith("kdebug.cli.")] == [
        "kdebug.cli.launch_cmds", "kdebug.cli.main", "kdebug.cli.options"]
    assert not [m for m in mods if m.startswith(("kdebug.postmortem", "kdebug.report", "kdebug.fleet",
                                                 "kdebug.capture", "drgn"))]
