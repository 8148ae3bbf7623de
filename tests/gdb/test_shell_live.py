"""`kdebug shell --session NAME`: drgn on the running guest (memory read from
QEMU on the host), at the same gdb stop as kd-ps, and agreeing with it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT, need_tool
from tests.gdb.live import attach_gdb, kd_records, release


def test_live_drgn_at_a_gdb_stop_equals_kd_ps(shared_guest):
    need_tool("gdb")
    kernel = shared_guest.prepared.kernel
    driver, _ = attach_gdb(shared_guest, kernel)  # the guest is stopped from here on
    try:
        kd = {t["pid"]: (t["ppid"], t["state"], t["comm"]) for t in kd_records(driver, "kd-ps")}
        r = subprocess.run([sys.executable, "-m", "kdebug.cli.main", "shell", "--session", shared_guest.session.name,
                            "-c", "import json; print(json.dumps([(t.pid, t.ppid, t.state, t.comm) "
                                  "for t in kd_tasks()]))"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    finally:
        release(shared_guest, driver)
    assert r.returncode == 0, r.stderr[-2000:]
    live = {pid: (ppid, state, comm) for pid, ppid, state, comm in json.loads(r.stdout)}
    # drgn's walk leaves out the idle task (pid 0).
    assert live == {pid: v for pid, v in kd.items() if pid != 0} and len(live) > 30
