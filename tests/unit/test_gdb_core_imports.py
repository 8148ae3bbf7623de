"""What runs inside gdb imports only the standard library, gdb and the pure
core, and works under the system python3 (gdb's), not only the venv's."""

import subprocess


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
