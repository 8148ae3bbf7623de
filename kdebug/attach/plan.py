"""The gdb side of `kdebug attach` as data: :class:`GdbPlan` and the gdb
command line it gives (:func:`gdb_argv`, pure, golden-tested)."""

from __future__ import annotations

import site
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.attach.sources import distro_source_dir
from kdebug.errors import DebuggerError
from kdebug.paths import cache_dir
from kdebug.resources import GDB_SCRIPTS, data_path

LOADER = data_path(GDB_SCRIPTS, "kdebug_gdb.py")
GDB = "gdb"


@dataclass
class GdbPlan:
    vmlinux: Path
    port: int
    kaslr_offset: int | None = 0  # None: leave symbols unloaded (unknown offset)
    batch: bool = False
    styled: bool = True  # False when a script reads gdb's output
    commands: list[str] = field(default_factory=list)  # --ex, run after connecting
    files: list[Path] = field(default_factory=list)  # -x, run after connecting
    breaks: list[str] = field(default_factory=list)  # kd-break presets
    source_dirs: list[Path] = field(default_factory=list)
    kernel_scripts: Path | None = None  # a tree's vmlinux-gdb.py (lx- commands)
    detach_on_quit: bool = False  # someone else's guest: never kill it
    index_cache: Path | None = None
    ram_file: Path | None = None  # QEMU's guest RAM (kd-memory): the fast read path
    ram_base: int = 0  # where guest-physical 0 is in ram_file (QEMU's /proc/PID/mem)
    ram_size: int | None = None  # linear RAM there (default: the file's size)
    module_dirs: list[Path] = field(default_factory=list)  # module debug files (kd-symbols)
    python_path: list[str] = field(default_factory=list)  # where gdb's Python finds kdebug (host_python_path)
    core: Path | None = None  # post-mortem: this ELF core instead of a gdbstub (port unused)
    #: post-mortem: gdb's remote target instead of the gdbstub's port (`target remote REMOTE`:
    #: the Unix socket kdebug's dump stub listens on, or `| CMD` for a pipe)
    remote: str | None = None
    await_fd: int | None = None  # gdb loads symbols, then waits for "go" on this fd before connecting


def gdb_argv(plan: GdbPlan, gdb: str = GDB) -> list[str]:
    """The gdb command line for ``plan`` (pure)."""
    argv = [gdb, "-nx", "-q"]
    if plan.batch:
        argv.append("-batch")
    # The architecture up front: KGDB, unlike QEMU, sends no target description.
    early = ["set confirm off", "set pagination off", "set width 0", "set height 0",
             "set print pretty off", "set architecture i386:x86-64"]
    if not plan.styled:
        early.append("set style enabled off")
    if plan.python_path:
        early.append(python_path_command(plan.python_path))
    if plan.index_cache:
        early += [f"set index-cache directory {plan.index_cache}", "set index-cache enabled on"]
    for c in early:
        argv += ["-iex", c]
    cmds = [f"source {LOADER}"]
    if plan.kaslr_offset is not None:
        cmds.append(f"kd-symbol-file {plan.vmlinux} --offset {plan.kaslr_offset:#x}")
    cmds += [f"directory {d}" for d in plan.source_dirs]
    if plan.await_fd is not None:
        cmds.append(f"kd-await {plan.await_fd}")
    if plan.core:
        cmds.append(f"core-file {plan.core}")
    elif plan.remote:
        cmds.append(f"target remote {plan.remote}")
    else:
        cmds.append(f"target remote 127.0.0.1:{plan.port}")
    if plan.ram_file:
        where = f" --base {plan.ram_base:#x} --size {plan.ram_size:#x}" if plan.ram_size else ""
        cmds.append(f"kd-memory {plan.ram_file}{where}")
    if plan.module_dirs and plan.kaslr_offset is not None:
        follow = "" if plan.core or plan.remote else "--follow "  # a dump's module list never changes
        cmds.append(f"kd-symbols {follow}" + " ".join(f"--dir {d}" for d in plan.module_dirs))
    if plan.kernel_scripts:
        cmds += [f"add-auto-load-safe-path {plan.kernel_scripts.parent}", f"source {plan.kernel_scripts}"]
    if plan.detach_on_quit:
        cmds.append("kd-detach-on-quit")
    cmds += [f"kd-break {b}" for b in plan.breaks]
    for c in cmds:
        argv += ["-ex", c]
    for f in plan.files:
        argv += ["-x", str(f)]
    for c in plan.commands:
        argv += ["-ex", c]
    return argv

def index_cache_dir() -> Path:
    """gdb's index cache (keyed by build-id): the 15 s first type lookup in a
    distro vmlinux becomes ~1 s on every later attach."""
    return cache_dir("gdb-index")


def host_python_path() -> list[str]:
    """Where this interpreter finds kdebug and its dependencies: kdebug's own
    parent directory, then the site directories (a venv's, the user's)."""
    package = Path(__file__).resolve().parents[1]  # kdebug/, wherever it is installed
    paths = [str(package.parent), *site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        paths.append(site.getusersitepackages())
    out: list[str] = []
    for p in paths:
        if p not in out and Path(p).is_dir():
            out.append(p)
    return out


def python_path_command(paths: list[str]) -> str:
    """The gdb command that lets gdb's embedded Python (the system python3)
    import from ``paths``: added as site dirs, so an editable install's .pth
    finders work there too."""
    return f"python import site; [site.addsitedir(p) for p in {paths!r}]"


@dataclass(frozen=True)
class KernelFiles:
    """What gdb needs of a kernel: a :class:`kdebug.kernel.Kernel`, or the
    dict a session recorded of one."""

    vmlinux: Path | None
    release: str = ""
    source: str = ""
    tree: Path | None = None
    gdb_scripts: Path | None = None
    module_debug_dir: Path | None = None

    @classmethod
    def from_dict(cls, d: dict) -> KernelFiles:
        def p(key):
            return Path(d[key]) if d.get(key) else None

        return cls(vmlinux=p("vmlinux"), release=d.get("release") or "", source=d.get("source") or "",
                   tree=p("tree"), gdb_scripts=p("gdb_scripts"), module_debug_dir=p("module_debug_dir"))

    @classmethod
    def from_kernel(cls, k) -> KernelFiles:
        return cls.from_dict(k.to_dict())


@dataclass
class AttachOptions:
    session: str | None = None  # attach to this running `kdebug boot` guest
    batch: bool = False
    commands: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    breaks: list[str] = field(default_factory=list)
    source_dirs: list[Path] = field(default_factory=list)
    boot_timeout: float = 120.0
    gdb_timeout: float | None = None  # batch runs only
    kgdb: bool = False  # through the kernel's own KGDB on a second serial port, no gdbstub
    cold: bool = False  # boot; no saved guest restored or saved (kdebug.warm)
    reseed: bool = False  # fresh host randomness into a restored guest's RNG


def plan_for(kernel: KernelFiles, port: int, offset: int | None, a: AttachOptions, **extra) -> GdbPlan:
    """The gdb plan for ``kernel`` on ``port``, as the attach options ask."""
    vml = kernel.vmlinux
    if not vml:
        raise DebuggerError(f"kernel {kernel.release or '?'} has no debug vmlinux: gdb would have no symbols",
                            hint="install its -dbg package or pass --vmlinux/--tree")
    srcs = list(a.source_dirs)
    if kernel.tree:
        srcs.append(kernel.tree)
    elif not srcs and kernel.source == "distro":
        found = distro_source_dir(kernel.release)
        if found:
            srcs.append(found)
    return GdbPlan(vmlinux=vml, port=port, kaslr_offset=offset, batch=a.batch,
                   styled=not a.batch, commands=list(a.commands), files=list(a.files),
                   breaks=list(a.breaks), source_dirs=srcs,
                   kernel_scripts=kernel.gdb_scripts,
                   index_cache=index_cache_dir(),
                   module_dirs=[kernel.module_debug_dir] if kernel.module_debug_dir else [],
                   python_path=host_python_path(),
                   **extra)


def kgdb_serial_args(port: int) -> tuple[str, ...]:
    """A second 8250 port (ttyS1) as a TCP server on loopback: gdb's line to KGDB."""
    return ("-serial", f"tcp:127.0.0.1:{port},server=on,wait=off")
