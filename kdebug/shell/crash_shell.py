"""``kdebug shell --crash``: crash on a dump, with module debug info and
kdebug's extension loaded, told first what this crash cannot follow."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from kdebug.crash import support
from kdebug.crash.extension import ExtensionError, build_extension
from kdebug.crash.index import for_crash
from kdebug.crash.runner import crash_version, pick_crash
from kdebug.decode.elfsyms import read_vmlinux
from kdebug.elf import FormatError, file_module
from kdebug.errors import ToolMissing, UsageError
from kdebug.shell.options import ShellOptions, foreground
from kdebug.shell.target import Target


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
    out: dict[str, Path] = {}
    for p in target.dump.module_files if target.dump else ():
        try:
            name = file_module(p).name
        except (OSError, FormatError):
            continue
        out.setdefault(name, p)
    return list(out.items())


def crash_argv(target: Target, init_file: Path, crash: str = "crash") -> list[str]:
    return [crash, "-s", str(for_crash(target.vmlinux)), str(target.dump.path), "-i", str(init_file)]


def crash_shell(target: Target, opts: ShellOptions, say=print, crash: str | None = None) -> int:
    """``crash``: the binary; None: the one on this host that can read the dump's kernel."""
    if target.live:
        raise UsageError("crash reads dumps, not a running guest",
                         hint="take one first: kdebug snapshot --session NAME, then kdebug shell DIR --crash")
    if crash is None:
        choice = pick_crash(target.vmlinux)
        if choice.binary is None:
            raise ToolMissing(choice.reason, hint="kdebug shell DIR (drgn) reads it; scripts/setup.sh builds "
                              "a current crash" if choice.unsupported else "scripts/setup.sh")
        crash = choice.binary.path
    if shutil.which(crash) is None:
        raise ToolMissing("crash not found", hint="apt-get install crash (scripts/setup.sh)")
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
        return foreground([*crash_argv(target, init, crash)], batch=opts.batch)


def crash_limits(vmlinux: Path, version: str, crash: str, have_extension: bool) -> list[str]:
    """What this crash is known not to follow on this kernel (kdebug.crash.support),
    told before the prompt rather than discovered in it."""
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
    try:
        return build_extension(crash)
    except ExtensionError as e:
        say(f"kdebug: warning: kdebug's crash extension is not available: {e}")
        return None
