"""`kdebug attach --kgdb`: the same gdb session through the kernel's own KGDB
on a second serial port, on the debug kernel (no gdbstub used)."""

from __future__ import annotations

import re

import pytest

from tests.gdb.test_live_tree import tree  # noqa: F401  (the built debug kernel)
from tests.vm.test_attach_cli import kdebug, no_qemu_left

pytestmark = pytest.mark.one_kernel  # boots the built debug tree, not a distro kernel


def test_attach_over_kgdb(tree):  # noqa: F811
    # KGDB's gdb threads are tasks (ids = pids), not vCPUs: the CPU-based
    # commands must find the CPU that stopped, running the shell that wrote
    # "g" to /proc/sysrq-trigger, and unwind it from KGDB's registers.
    r = kdebug("attach", "--tree", str(tree), "--kgdb", "--batch", "--ex", "kd-version",
               "--ex", "p init_task.comm", "--ex", "bt 3", "--ex", "kd-cpus",
               "--ex", 'printf "current=%s\\n", $kd_current()->comm',
               "--ex", "python gdb.execute('kd-bt %d' % int(gdb.parse_and_eval('$kd_current()->pid')))")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "KGDB on ttyS1" in r.stderr and "-gdb" not in r.stderr
    m = re.search(r"KASLR offset (0x[0-9a-f]+) \(from the guest's /proc/kallsyms\)", r.stderr)
    assert m, r.stderr
    assert re.search(r"^Linux version 6\.1\.\d+ ", r.stdout, re.M), r.stdout
    assert '"swapper/0' in r.stdout
    # Stopped by sysrq-g: KGDB's own breakpoint, reached from the sysrq handler.
    assert "kgdb_breakpoint" in r.stdout and "sysrq" in r.stdout
    assert "current=sh\n" in r.stdout, r.stdout[-3000:]
    assert re.search(r"^\*\s+\d+\s+0x[0-9a-f]+\s+\d+\s+sh$", r.stdout, re.M), r.stdout[-3000:]
    kd_bt = r.stdout[r.stdout.index("current=sh"):]
    assert re.search(r"^#\d+ +0x[0-9a-f]+ sysrq_handle_dbg\+", kd_bt, re.M), kd_bt
    assert "write_sysrq_trigger" in kd_bt and "context_switch" not in kd_bt
    assert no_qemu_left(r.pid)
