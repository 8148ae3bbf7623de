"""The pure core imports no adapter library (gdb, drgn, pexpect, pygdbmi, click, qemu)."""

import subprocess
import sys

CORE = [
    "kdebug.errors", "kdebug.elf", "kdebug.kconfig", "kdebug.kernel", "kdebug.paths",
    "kdebug.session", "kdebug.doctor",
    "kdebug.initramfs.cpio", "kdebug.initramfs.recipe", "kdebug.initramfs.modules",
    "kdebug.initramfs.build",
    "kdebug.plan.argv", "kdebug.plan.cmdline", "kdebug.plan.plan", "kdebug.plan.profile",
    "kdebug.plan.diagnose", "kdebug.plan.accel",
]
BLOCKED = ["gdb", "drgn", "pexpect", "pygdbmi", "click", "qemu"]

PROG = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in %r:
            raise ImportError('blocked adapter import: ' + name)
sys.meta_path.insert(0, Block())
import importlib
for m in %r:
    importlib.import_module(m)
print('ok')
"""


def test_core_imports_no_adapters():
    r = subprocess.run([sys.executable, "-c", PROG % (BLOCKED, CORE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_blocker_really_blocks():
    # The check above must be able to fail: an adapter module is refused.
    r = subprocess.run([sys.executable, "-c", PROG % (BLOCKED, ["kdebug.guest.qemu"])],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "blocked adapter import: pexpect" in r.stderr


def test_shared_records_are_core():
    r = subprocess.run([sys.executable, "-c", PROG % (BLOCKED, ["kdebug.model", "kdebug.format"])],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
