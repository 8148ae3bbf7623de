"""What runs inside gdb imports only the standard library, gdb and the pure
core, and works under the system python3 (gdb's), not only the venv's."""

import subprocess
import sys

from tests.unit.test_architecture import BLOCKED, PROG

PURE = ["kdebug.kgdb.kaslr", "kdebug.kgdb.elfsyms", "kdebug.kgdb.tasks", "kdebug.kgdb.printk",
        "kdebug.kgdb.modules", "kdebug.kgdb.breaks", "kdebug.kgdb.structs", "kdebug.kgdb.physmap",
        "kdebug.kgdb.warm", "kdebug.kgdb.modsyms", "kdebug.kbuild", "kdebug.attach"]


def test_kgdb_core_imports_no_adapters():
    r = subprocess.run([sys.executable, "-c", PROG % (BLOCKED, PURE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_system_python_can_format(tmp_path):
    # gdb embeds /usr/bin/python3; kdebug.format needs tabulate there too.
    code = ("import sys; sys.path.insert(0, {!r}); from kdebug.format import format_tasks; "
            "from kdebug.model import TaskRecord; "
            "print(format_tasks([TaskRecord(1, 1, 0, 'S', 0, 'init', 0x10)]))").format(str(
                __import__("pathlib").Path(__file__).resolve().parents[2]))
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "init" in r.stdout and "0x10" in r.stdout
