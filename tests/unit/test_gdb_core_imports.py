"""What runs inside gdb imports only the standard library, gdb and the pure
core, and works under the system python3 (gdb's), not only the venv's."""

import subprocess
import sys

from tests.unit.test_architecture import BLOCKED, PROG

PURE = ["kdebug.decode.kaslr", "kdebug.decode.elfsyms", "kdebug.decode.tasks", "kdebug.decode.printk",
        "kdebug.decode.modules", "kdebug.decode.breaks", "kdebug.decode.structs", "kdebug.decode.physmap",
        "kdebug.attach.warm", "kdebug.decode.modsyms", "kdebug.kbuild", "kdebug.attach.plan"]


def test_kgdb_core_imports_no_adapters():
    r = subprocess.run([sys.executable, "-c", PROG % (BLOCKED, PURE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_system_python_can_format(tmp_path):
    # gdb embeds /usr/bin/python3 (-S: without its own site dirs); given this
    # installation's paths, as attach hands them over, it imports kdebug's
    # formatter and tabulate from here.
    from kdebug.attach.plan import host_python_path

    code = (f"import site; [site.addsitedir(p) for p in {host_python_path()!r}]; "
            "from kdebug.format import format_tasks; "
            "from kdebug.model import TaskRecord; "
            "print(format_tasks([TaskRecord(1, 1, 0, 'S', 0, 'init', 0x10)]))")
    r = subprocess.run(["/usr/bin/python3", "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "init" in r.stdout and "0x10" in r.stdout
