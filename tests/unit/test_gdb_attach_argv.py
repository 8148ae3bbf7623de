"""The gdb command line `kdebug attach` runs, and the breakpoint presets."""

from pathlib import Path

import pytest

from kdebug.attach.plan import LOADER, GdbPlan, gdb_argv
from kdebug.decode.breaks import PRESETS, preset
from kdebug.errors import UsageError


def ex_list(argv, flag="-ex"):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_scripted_attach_order():
    plan = GdbPlan(vmlinux=Path("/v/vmlinux"), port=1234, kaslr_offset=0x35E00000, batch=True, styled=False,
                   commands=["kd-ps"], files=[Path("cmds.gdb")], breaks=["panic"],
                   index_cache=Path("/c/gdb-index"), kernel_scripts=Path("/t/vmlinux-gdb.py"))
    argv = gdb_argv(plan)
    assert argv[:4] == ["gdb", "-nx", "-q", "-batch"]
    early = ex_list(argv, "-iex")
    assert "set style enabled off" in early
    assert early[-2:] == ["set index-cache directory /c/gdb-index", "set index-cache enabled on"]
    ex = ex_list(argv)
    # Loader, symbols at the offset, then connect, then the kernel's own scripts, presets, user commands.
    assert ex == [f"source {LOADER}", "kd-symbol-file /v/vmlinux --offset 0x35e00000",
                  "target remote 127.0.0.1:1234", "add-auto-load-safe-path /t", "source /t/vmlinux-gdb.py",
                  "kd-break panic", "kd-ps"]
    assert argv[argv.index("-x") + 1] == "cmds.gdb"
    assert argv.index("-x") < len(argv) - 2  # -x before the trailing --ex


def test_early_gdb_loads_symbols_then_awaits_the_guest_before_connecting():
    plan = GdbPlan(vmlinux=Path("/v/vmlinux"), port=7, kaslr_offset=0x200000, batch=True,
                   source_dirs=[Path("/src")], ram_file=Path("/proc/1/fd/3"), commands=["kd-ps"], await_fd=9)
    assert ex_list(gdb_argv(plan)) == [f"source {LOADER}", "kd-symbol-file /v/vmlinux --offset 0x200000",
                                       "directory /src", "kd-await 9", "target remote 127.0.0.1:7",
                                       "kd-memory /proc/1/fd/3", "kd-ps"]


def test_interactive_keeps_style_and_session_detaches():
    argv = gdb_argv(GdbPlan(vmlinux=Path("v"), port=1, detach_on_quit=True))
    assert "-batch" not in argv and "set style enabled off" not in ex_list(argv, "-iex")
    assert "kd-detach-on-quit" in ex_list(argv)
    assert "127.0.0.1" in " ".join(argv) and "-s" not in argv


def test_unknown_offset_loads_no_symbols():
    assert not any(e.startswith("kd-symbol-file") for e in ex_list(gdb_argv(GdbPlan(Path("v"), 1, None))))


def test_loader_exists():
    assert LOADER.is_file()


def test_presets():
    assert [b.location for b in preset(["boot"])] == ["start_kernel", "rest_init", "kernel_init", "run_init_process"]
    assert all(b.hardware for b in preset(["boot"]))
    sc = preset(["syscall", "openat"])[0]
    assert sc.location == "__x64_sys_newopenat" and sc.alternatives[0] == "__x64_sys_openat"
    assert "sys_openat" in sc.alternatives
    assert preset(["sched", "42"])[0].condition == "next_p->pid == 42"
    assert set(PRESETS) == {"boot", "panic", "module", "syscall", "sched"}
    for bad in ([], ["nope"], ["syscall"], ["sched", "x"], ["syscall", "a;b"]):
        with pytest.raises(UsageError):
            preset(bad)


def test_makefile_version(tmp_path):
    from kdebug.attach.sources import _makefile_version

    mk = tmp_path / "Makefile"
    mk.write_text("# SPDX\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\n")
    assert _makefile_version(mk) == "6.1.192"
    mk.write_text("VERSION = 6\n")
    assert _makefile_version(mk) is None
    assert _makefile_version(tmp_path / "missing") is None


def test_kgdb_serial_port_is_loopback_only():
    from kdebug.attach.plan import kgdb_serial_args

    assert kgdb_serial_args(4444) == ("-serial", "tcp:127.0.0.1:4444,server=on,wait=off")


def test_architecture_is_set_before_connecting():
    argv = gdb_argv(GdbPlan(Path("v"), 1))
    assert "set architecture i386:x86-64" in ex_list(argv, "-iex")  # KGDB sends no target description
