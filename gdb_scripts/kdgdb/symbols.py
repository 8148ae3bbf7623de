"""kd-symbol-file (vmlinux at a KASLR offset, per-cpu data left alone) and the
detach helpers `kdebug attach --session` uses."""

from __future__ import annotations

import os

import gdb

from kdebug.decode.elfsyms import read_vmlinux
from kdebug.errors import KdebugError

from . import modules, tasks
from .command import Command, register
from .memory import ram_status, use_ram_file


def symbol_file_command(vmlinux: str, offset: int) -> str:
    """add-symbol-file with every allocated section moved by ``offset``, except
    those linked at 0 (.data..percpu: per-cpu symbols are offsets, not
    addresses, and the kernel does not relocate them)."""
    secs, _ = read_vmlinux(vmlinux, [])
    text = next((s for s in secs if s.name == ".text"), None)
    if text is None:
        raise gdb.GdbError(f"{vmlinux} has no .text section")
    parts = [f"add-symbol-file {vmlinux} {text.addr + offset:#x}"]
    for s in secs:
        if s.alloc and s.addr and s.name != ".text":
            parts.append(f"-s {s.name} {s.addr + offset:#x}")
    return " ".join(parts)


@register
class KdSymbolFile(Command):
    """Load a vmlinux's symbols at a KASLR offset (per-cpu symbols unmoved).

    Usage: kd-symbol-file VMLINUX [--offset N]   (`kdebug attach` finds N itself)"""

    name = "kd-symbol-file"
    needs_target = False

    def arguments(self, p):
        p.add_argument("vmlinux")
        p.add_argument("--offset", default="0", help="KASLR offset (hex or decimal)")

    def run(self, a):
        try:
            off = int(a.offset, 0)
        except ValueError:
            raise gdb.GdbError(f"bad offset {a.offset!r}") from None
        try:
            cmd = symbol_file_command(a.vmlinux, off)
        except (OSError, ValueError) as e:
            raise gdb.GdbError(f"cannot read {a.vmlinux}: {e}") from None
        gdb.execute("symbol-file", to_string=True)  # forget an earlier one
        gdb.execute(cmd, to_string=True)
        return f"kdebug: symbols from {a.vmlinux}, KASLR offset {off:#x}"


def look_ahead() -> None:
    """Look up, from the symbols alone, what the first commands after the
    connect need: the task and module layouts and the functions
    `kd-symbols --follow` breaks on. gdb expands the compile units behind
    them on first use, its slowest step; done here, it overlaps the boot.
    A kernel without one of them is left to the command that needs it."""
    def function(name: str):
        return gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)

    for step in (tasks.layout, modules.layout, lambda: function("do_init_module"),
                 lambda: function("free_module")):
        try:
            step()
        except (gdb.error, gdb.GdbError, KdebugError):
            pass


@register
class KdAwait(Command):
    """Wait for kdebug's word on a file descriptor before going on.

    Usage: kd-await FD   (`kdebug attach` starts gdb while the guest boots)

    gdb reads the kernel's symbols while the guest is still booting; the
    commands after this one (target remote, ...) wait until kdebug writes a
    line to FD, once the guest is at its shell. EOF, or any word but "go",
    means kdebug gave up on the boot: gdb quits with status 1."""

    name = "kd-await"
    needs_target = False

    def arguments(self, p):
        p.add_argument("fd", type=int)

    def run(self, a):
        look_ahead()
        try:
            with os.fdopen(a.fd, "rb", buffering=0) as f:
                word = f.readline()  # b"" at EOF
        except KeyboardInterrupt:  # Ctrl-C during the boot: kdebug gives up too
            word = b""
        except OSError as e:
            raise gdb.GdbError(f"kd-await: cannot read fd {a.fd}: {e.strerror}") from None
        if word.strip() != b"go":
            gdb.execute("quit 1")


@register
class KdDetachOnQuit(Command):
    """Detach instead of killing when gdb quits (the guest is not ours)."""

    name = "kd-detach-on-quit"
    needs_target = False

    def run(self, a):
        gdb.execute("define hook-quit\nkd-detach-now\nend", to_string=True)


@register
class KdDetachNow(Command):
    """Detach from the target if connected (no error otherwise)."""

    name = "kd-detach-now"
    needs_target = False

    def run(self, a):
        if gdb.selected_inferior().pid != 0:
            gdb.execute("detach", to_string=True)


@register
class KdMemory(Command):
    """Read kernel memory from QEMU's guest-RAM file (fast) or the gdbstub.

    Usage: kd-memory [PATH [--base N --size N] | off]   (`kdebug attach` sets it itself;
    PATH may be QEMU's /proc/PID/mem with guest-physical 0 at host address --base)"""

    name = "kd-memory"
    needs_target = False

    def arguments(self, p):
        p.add_argument("path", nargs="?")
        p.add_argument("--base", type=lambda s: int(s, 0), default=0)
        p.add_argument("--size", type=lambda s: int(s, 0))

    def run(self, a):
        if a.path == "off":
            use_ram_file(None)
        elif a.path:
            try:
                use_ram_file(a.path, a.base, a.size)
            except OSError as e:
                raise gdb.GdbError(f"kd-memory: {e}") from None
        st = ram_status()
        if not st["path"]:
            return "kd-memory: reading through the gdbstub"
        return f"kd-memory: guest RAM from {st['path']} ({st['hits']} reads there, {st['misses']} via the gdbstub)"
