"""Kernel features read from the debug info, for notes that must be true of
the kernel at hand (a distribution may backport a change to an older release,
so these are never inferred from the version)."""

from __future__ import annotations

import drgn


def pid_numbers_flexible(prog: drgn.Program) -> bool:
    """Whether ``struct pid`` ends in the flexible array ``numbers[]``: kernel
    commit b69f0aeb0689 ("pid: Replace struct pid 1-element array with
    flex-array"), v6.5, which Debian backported to 6.1. Before it the array
    had one element."""
    numbers = prog.type("struct pid").member("numbers").type
    return numbers.length in (None, 0)
