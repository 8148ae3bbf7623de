"""``kdebug shell`` in drgn (the default): a Python prompt with ``prog`` over
a dump or a live guest, and kdebug's collectors beside drgn's helpers."""

from __future__ import annotations

from kdebug.analysis import interactive
from kdebug.analysis.live import open_live
from kdebug.analysis.program import open_program as open_dump_program
from kdebug.shell.options import ShellOptions
from kdebug.shell.target import Target


def open_program(target: Target):
    """A drgn program over the target, with its warnings."""
    if target.live:
        s = target.session
        return open_live(s.qmp_socket, s.qemu_pid, target.vmlinux, target.module_debug_dir)
    return open_dump_program(target.dump)


def drgn_shell(target: Target, opts: ShellOptions, say=print) -> int:
    prog, warnings = open_program(target)
    for w in warnings:
        say(f"kdebug: {w}")
    if opts.code is not None or opts.script is not None:
        return interactive.run_code(prog, opts.code, opts.script, opts.args)
    interactive.interact(prog, f"kdebug: {target.describe()}; vmlinux {target.vmlinux}")
    return 0
