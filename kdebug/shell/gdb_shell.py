"""``kdebug shell --gdb``: gdb on a dump (through kdebug's dump stub) or on a
running guest's gdbstub."""

from __future__ import annotations

from kdebug.attach.flow import attach_session
from kdebug.attach.plan import AttachOptions
from kdebug.attach.postmortem import attach_dump
from kdebug.shell.options import ShellOptions
from kdebug.shell.target import Target


def gdb_shell(target: Target, opts: ShellOptions, say=print) -> int:
    a = AttachOptions(batch=opts.batch, commands=list(opts.commands), files=list(opts.files))
    if target.live:
        return attach_session(target.session.name, a, say)
    return attach_dump(target.dump, a, say)
