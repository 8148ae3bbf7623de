"""The capture core (records, checks, plan, triggers, diagnoses, module build)
imports no adapter library; only guest.py, kdump.py, qemudump.py and api.py
drive QEMU (pexpect, qemu.qmp)."""

import subprocess
import sys

from tests.unit.test_architecture import BLOCKED, PROG

CAPTURE_CORE = ["kdebug.capture.record", "kdebug.capture.plan",
                "kdebug.capture.triggers", "kdebug.capture.diagnose", "kdebug.capture.module"]


def test_capture_core_imports_no_adapters():
    r = subprocess.run([sys.executable, "-c", PROG % (BLOCKED, CAPTURE_CORE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_capture_driver_is_an_adapter():
    r = subprocess.run([sys.executable, "-c", PROG % (BLOCKED, ["kdebug.capture.kdump"])],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "blocked adapter import: " in r.stderr  # pexpect, or drgn (its check)
