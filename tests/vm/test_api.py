"""The Python API, used only through `import kdebug`: boot, run a command,
attach gdb and read the task list, live drgn on the same stop; each checked
against the guest's own /proc."""

from __future__ import annotations

import kdebug
from tests.conftest import need_tool


def test_api_boot_run_attach_and_live_drgn(kernel):
    need_tool("qemu-system-x86_64", "gdb")
    with kdebug.boot(release=kernel.release) as guest:
        assert guest.run("uname -r").output.strip() == kernel.release
        out = guest.run("sleep 600 & echo $!").output.split()
        sleeper = int(out[-1])
        procs = {int(p) for p in guest.run("ls /proc").output.split() if p.isdigit()}
        with guest.attach() as gdb:
            tasks = {t.pid: t for t in gdb.tasks()}
            # The guest is stopped: live drgn reads the same kernel state.
            live = {t.pid: (t.ppid, t.state, t.comm) for t in kdebug.api.drgn_tasks(guest.drgn())}
            frames = [f.function for f in gdb.backtrace(sleeper)]
        assert tasks[sleeper].comm == "sleep" and tasks[sleeper].state == "S"
        assert tasks[1].comm == "init" and tasks[0].comm == "swapper/0"
        # Every process /proc listed (but the ls itself, gone by now) is in kd-ps.
        assert procs - set(tasks) <= {max(procs)}, procs - set(tasks)
        # drgn's walk (for_each_task) leaves out the idle task, pid 0.
        assert live == {pid: (t.ppid, t.state, t.comm) for pid, t in tasks.items() if pid != 0}
        assert "do_nanosleep" in frames or "hrtimer_nanosleep" in frames, frames
        # The guest runs again after the Gdb closed.
        assert guest.run("echo alive").output.strip() == "alive"
