"""Inside a real gdb without a target: every kd- command and $kd_ function is
registered with help, and using one too early is a one-line error."""

import os
import re
import subprocess

import pytest

from kdebug.attach.plan import LOADER, host_python_path, python_path_command
from tests.conftest import need_tool

pytestmark = pytest.mark.one_kernel  # gdb without a target: no kernel involved

COMMANDS = ["kd-ps", "kd-dmesg", "kd-lsmod", "kd-version", "kd-cmdline", "kd-cpus", "kd-task", "kd-bt",
            "kd-symbols", "kd-memory", "kd-config", "kd-break", "kd-symbol-file", "kd-await"]
MI_COMMANDS = ["kd-ps", "kd-dmesg", "kd-lsmod", "kd-bt", "kd-task", "kd-cpus", "kd-version", "kd-cmdline"]
FUNCTIONS = ["kd_current", "kd_task", "kd_per_cpu", "container_of"]


def gdb_batch(*cmds: str) -> str:
    need_tool("gdb")
    argv = ["gdb", "-nx", "-q", "-batch", "-iex", "set style enabled off",
            "-iex", python_path_command(host_python_path()), "-ex", f"source {LOADER}"]
    for c in cmds:
        argv += ["-ex", c]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return r.stdout + r.stderr


def test_every_command_and_function_has_help():
    out = gdb_batch("help user-defined", "help function")
    for c in COMMANDS:
        m = re.search(rf"^{c} -- (.+)$", out, re.M)
        assert m and len(m.group(1)) > 10, f"{c} has no help line"
    for f in FUNCTIONS:
        assert re.search(rf"^function {f} -- .+", out, re.M), f


@pytest.mark.parametrize("cmd", ["kd-ps", "kd-dmesg --tail 3", "kd-bt 1", "p $kd_current()"])
def test_no_target_is_a_one_line_error(cmd):
    out = gdb_batch(cmd)
    assert "Traceback" not in out
    assert "not connected to a kernel" in out
    assert len(out.strip().splitlines()) == 1, out


def test_record_commands_have_mi_twins():
    """-kd-ps and the other record commands exist in MI; without a target
    they answer an MI error with the console command's one line."""
    need_tool("gdb")
    mi = "\n".join([*(f"-info-gdb-mi-command {c}" for c in MI_COMMANDS), "-kd-ps", "-kd-bt 1", "-gdb-exit"])
    argv = ["gdb", "-nx", "-q", "--interpreter=mi3", "-iex", python_path_command(host_python_path()),
            "-ex", f"source {LOADER}"]
    out = subprocess.run(argv, input=mi + "\n", capture_output=True, text=True, timeout=120).stdout
    assert out.count('^done,command={exists="true"}') == len(MI_COMMANDS), out
    assert out.count('^error,msg="not connected to a kernel') == 2, out
    assert "Traceback" not in out


def test_usage_errors_and_preset_list():
    out = gdb_batch("kd-ps --nope")
    assert "kd-ps: unrecognized arguments: --nope" in out and "Traceback" not in out
    assert "sched" in gdb_batch("kd-break list")
    out = gdb_batch("kd-break explode")
    assert "unknown preset 'explode'" in out and "Traceback" not in out


def test_symbol_file_errors():
    out = gdb_batch("kd-symbol-file /nonexistent/vmlinux --offset 0x200000")
    assert "cannot read /nonexistent/vmlinux" in out and "Traceback" not in out
    assert "bad offset" in gdb_batch("kd-symbol-file /x --offset zz")


@pytest.mark.parametrize("word", [b"go\n", b"", b"stop\n"])
def test_kd_await_goes_on_only_at_go(word):
    """`kdebug attach` holds gdb here while the guest boots: "go" lets the
    next commands run; EOF (kdebug gave up) or another word quits gdb with
    status 1 before them."""
    need_tool("gdb")
    read, write = os.pipe()
    os.write(write, word)
    os.close(write)
    argv = ["gdb", "-nx", "-q", "-batch", "-iex", python_path_command(host_python_path()),
            "-ex", f"source {LOADER}", "-ex", f"kd-await {read}", "-ex", "echo next\\n"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, pass_fds=(read,))
    os.close(read)
    if word == b"go\n":
        assert (r.returncode, r.stdout) == (0, "next\n"), r.stderr
    else:
        assert (r.returncode, r.stdout) == (1, ""), r.stderr


def test_kd_await_on_a_bad_fd_is_one_line():
    assert gdb_batch("kd-await 99").strip().splitlines() == ["kd-await: cannot read fd 99: Bad file descriptor"]
