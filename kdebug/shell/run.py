"""The three shells over one target: drgn (default), crash and gdb."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.errors import ToolMissing, UsageError
from kdebug.shell.target import Target


@dataclass
class ShellOptions:
    code: str | None = None  # -c: run this and exit with its status
    script: Path | None = None  # --script FILE [ARGS...]
    args: tuple[str, ...] = ()
    commands: list[str] = field(default_factory=list)  # --ex (crash, gdb)
    files: list[Path] = field(default_factory=list)  # -x (gdb)
    batch: bool = False


def open_program(target: Target):
    """A drgn program over the target, with its warnings."""
    if target.live:
        from kdebug.analysis.live import open_live

        s = target.session
        return open_live(s.qmp_socket, s.qemu_pid, target.vmlinux, target.module_debug_dir)
    from kdebug.analysis.program import open_program as open_dump_program

    return open_dump_program(target.dump)


def drgn_shell(target: Target, opts: ShellOptions, say=print) -> int:
    from kdebug.analysis import interactive

    prog, warnings = open_program(target)
    for w in warnings:
        say(f"kdebug: {w}")
    if opts.code is not None or opts.script is not None:
        return interactive.run_code(prog, opts.code, opts.script, opts.args)
    interactive.interact(prog, f"kdebug: {target.describe()}; vmlinux {target.vmlinux}")
    return 0


def crash_init_commands(target: Target, extension: Path | None) -> list[str]:
    """What crash runs first: module debug info, kdebug's extension."""
    cmds = []
    if target.module_debug_dir is not None:
        cmds.append(f"mod -S {target.module_debug_dir} >/dev/null")
    for name, path in _module_files(target):
        cmds.append(f"mod -s {name} {path} >/dev/null")  # out-of-tree modules a capture kept
    if extension is not None:
        cmds.append(f"extend {extension} >/dev/null")
    return cmds


def _module_files(target: Target) -> list[tuple[str, Path]]:
    """(module name, file) of the dump's out-of-tree module files, first file per name."""
    from kdebug.elf import FormatError, file_module

    out: dict[str, Path] = {}
    for p in target.dump.module_files if target.dump else ():
        try:
            name = file_module(p).name
        except (OSError, FormatError):
            continue
        out.setdefault(name, p)
    return list(out.items())


def crash_argv(target: Target, init_file: Path, crash: str = "crash") -> list[str]:
    from kdebug.crash.index import for_crash

    return [crash, "-s", str(for_crash(target.vmlinux)), str(target.dump.path), "-i", str(init_file)]


def crash_shell(target: Target, opts: ShellOptions, say=print, crash: str = "crash") -> int:
    if target.live:
        raise UsageError("crash reads dumps, not a running guest",
                         hint="take one first: kdebug snapshot --session NAME, then kdebug shell DIR --crash")
    if shutil.which(crash) is None:
        raise ToolMissing("crash not found", hint="apt-get install crash (scripts/setup.sh)")
    from kdebug.crash.runner import crash_version

    extension = _crash_extension(crash, say)
    version = crash_version(crash) or "crash"
    say(f"kdebug: {version} on {target.describe()}")
    for line in crash_limits(target.vmlinux, version, crash, extension is not None):
        say(f"kdebug: note: {line}")
    with tempfile.TemporaryDirectory(prefix="kdebug-crash-") as tmp:
        init = Path(tmp) / "init"
        lines = crash_init_commands(target, extension) + list(opts.commands)
        if opts.batch:
            lines.append("quit")
        init.write_text("\n".join(lines) + "\n")
        return _foreground([*crash_argv(target, init, crash)], batch=opts.batch)


def crash_limits(vmlinux: Path, version: str, crash: str, have_extension: bool) -> list[str]:
    """What this crash is known not to follow on this kernel (kdebug.crash.support),
    told before the prompt rather than discovered in it."""
    from kdebug.crash import support
    from kdebug.decode.elfsyms import read_vmlinux

    try:
        symbols = set(read_vmlinux(vmlinux, sorted(support.probe_symbols()))[1])
    except (OSError, ValueError):
        symbols = set()
    binary = Path(shutil.which(crash) or "/nonexistent")
    data = binary.read_bytes() if binary.is_file() else b""

    def crash_has(marker: bytes) -> bool:
        return marker in data

    out = [f"{version} cannot read this kernel: {c.change}; {support.fixed_by(c)}"
           for c in support.CANNOT_OPEN if c.on_kernel(symbols) and not c.fixed_in(crash_has)]
    pid = support.PID_FLEX_ARRAY
    if not pid.fixed_in(crash_has):
        hint = "kdebug's `kdps` walks the task list without it" if have_extension else "drgn's task list is whole"
        out.append(f"if crash says '{pid.message}', its ps and foreach miss tasks ({pid.change}; "
                   f"{support.fixed_by(pid)}): {hint}")
    return out


def _crash_extension(crash: str, say) -> Path | None:
    from kdebug.crash.extension import ExtensionError, build_extension

    try:
        return build_extension(crash)
    except ExtensionError as e:
        say(f"kdebug: warning: kdebug's crash extension is not available: {e}")
        return None


def gdb_shell(target: Target, opts: ShellOptions, say=print) -> int:
    from kdebug.attach.plan import AttachOptions

    a = AttachOptions(batch=opts.batch, commands=list(opts.commands), files=list(opts.files))
    if target.live:
        from kdebug.attach.flow import attach_session

        return attach_session(target.session.name, a, say)
    from kdebug.attach.postmortem import attach_dump

    return attach_dump(target.dump, a, say)


def _foreground(argv: list[str], *, batch: bool) -> int:
    """Run a debugger on this terminal; Ctrl-C is its own."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL if batch else None).returncode
    finally:
        signal.signal(signal.SIGINT, old)
        sys.stdout.flush()
