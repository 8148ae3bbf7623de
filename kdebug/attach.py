"""`kdebug attach`: gdb on a running guest, symbols loaded at the KASLR offset.

The gdb command line is built by pure functions (:func:`gdb_argv` from a
:class:`GdbPlan`); running gdb, reading the KASLR offset through QMP and
driving gdb from Python (tests, bench) are the adapter part below them.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.errors import DebuggerError, ToolMissing
from kdebug.kgdb import kaslr
from kdebug.kgdb.elfsyms import read_vmlinux
from kdebug.paths import cache_dir

ROOT = Path(__file__).resolve().parent.parent
LOADER = ROOT / "gdb_scripts" / "kdebug-gdb.py"
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
    module_dirs: list[Path] = field(default_factory=list)  # module debug files (kd-symbols)


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
    if plan.index_cache:
        early += [f"set index-cache directory {plan.index_cache}", "set index-cache enabled on"]
    for c in early:
        argv += ["-iex", c]
    cmds = [f"source {LOADER}"]
    if plan.kaslr_offset is not None:
        cmds.append(f"kd-symbol-file {plan.vmlinux} --offset {plan.kaslr_offset:#x}")
    cmds += [f"directory {d}" for d in plan.source_dirs]
    cmds.append(f"target remote 127.0.0.1:{plan.port}")
    if plan.ram_file:
        cmds.append(f"kd-memory {plan.ram_file}")
    if plan.module_dirs and plan.kaslr_offset is not None:
        cmds.append("kd-symbols --follow " + " ".join(f"--dir {d}" for d in plan.module_dirs))
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


# --- KASLR through QMP ---------------------------------------------------------

def kaslr_offset_from_qmp(qmp, vmlinux: Path) -> int:
    """The running kernel's KASLR offset from its IDT (the guest must be stopped
    or idle; ``qmp`` is a :class:`kdebug.guest.qmp.Qmp`)."""
    names = [n for pair in kaslr.VECTOR_SYMBOLS for n in pair]
    _, syms = read_vmlinux(vmlinux, names)
    link = kaslr.link_addresses(syms)

    def hmp(line: str) -> str:
        out = qmp.cmd("human-monitor-command", **{"command-line": line})
        return out if isinstance(out, str) else str(out.get("return", ""))

    base = kaslr.parse_idt_base(hmp("info registers"))
    qw = kaslr.parse_qwords(hmp(f"x /4gx {base:#x}"))
    if len(qw) < 4:
        raise DebuggerError("cannot read the guest's IDT through QMP", hint="use --nokaslr")
    runtime = [kaslr.gate_address(qw[0], qw[1]), kaslr.gate_address(qw[2], qw[3])]
    return kaslr.kaslr_offset(runtime, link)


# --- guest RAM shared with the host (the fast read path) ---------------------------

def ram_file_path(session) -> Path:
    """Where the guest RAM of ``session`` lives: /dev/shm when there is one."""
    shm = Path("/dev/shm")
    return (shm if shm.is_dir() and os.access(shm, os.W_OK) else session.dir) / f"kdebug-{session.name}.ram"


def share_ram(plan, path: Path):
    """``plan`` (a LaunchPlan) with its RAM in ``path``, created private (0600)
    before QEMU opens it: it is the guest's whole memory."""
    import dataclasses

    from kdebug.kgdb.physmap import shared_ram_args

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, plan.memory_mb << 20)
    finally:
        os.close(fd)
    return dataclasses.replace(plan, extra_args=tuple(plan.extra_args) + shared_ram_args(str(path), plan.memory_mb))


def hold_ram_file(path: Path, qemu_pid: int, timeout: float = 15.0) -> Path:
    """Keep the RAM file open here and unlink it once QEMU has mapped it: no
    copy of guest memory outlives us, even after kill -9. gdb opens it
    through our fd's /proc path."""
    fd = os.open(path, os.O_RDONLY)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if str(path) in Path(f"/proc/{qemu_pid}/maps").read_text():
                path.unlink(missing_ok=True)
                break
        except OSError:
            break
        time.sleep(0.05)
    return Path(f"/proc/{os.getpid()}/fd/{fd}")


# --- running gdb -----------------------------------------------------------------

def check_gdb(gdb: str = GDB) -> None:
    import shutil

    if shutil.which(gdb) is None:
        raise ToolMissing(f"{gdb} not found", hint="apt-get install gdb (scripts/setup.sh)")


def run_gdb(argv: list[str], *, timeout: float | None = None, capture: bool = False) -> subprocess.CompletedProcess:
    """Run gdb in the foreground. Ctrl-C belongs to gdb (it interrupts the
    guest), so we ignore SIGINT meanwhile."""
    check_gdb(argv[0])
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.run(argv, timeout=timeout, text=True,
                              capture_output=capture, stdin=subprocess.DEVNULL if capture else None)
    except subprocess.TimeoutExpired:
        raise DebuggerError(f"gdb did not finish within {timeout:g} s") from None
    finally:
        signal.signal(signal.SIGINT, old)


class ConsoleDrain:
    """Keeps reading the guest console while gdb owns the terminal, so QEMU
    never blocks on a full pty (the text stays in the guest's transcript)."""

    def __init__(self, guest) -> None:
        self._guest = guest
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import pexpect

        while not self._stop.is_set() and self._guest.alive():
            try:
                self._guest.child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.3)
            except Exception:
                return

    def __enter__(self) -> ConsoleDrain:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class GdbDriver:
    """gdb under pexpect, one command at a time (tests and the benchmark).

    Each command is followed by an ``echo`` of a unique marker so that its
    output is exactly what came before the marker.
    """

    def __init__(self, argv: list[str], timeout: float = 300.0) -> None:
        import pexpect

        check_gdb(argv[0])
        self._seq = 0
        self.child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", codec_errors="replace",
                                   timeout=timeout, echo=False, dimensions=(200, 1000),
                                   env={**os.environ, "TERM": "dumb"})
        self.child.delaybeforesend = None  # pexpect's default 50 ms per line would dominate timings
        self.startup = self._until_marker(timeout)

    def _until_marker(self, timeout: float) -> str:
        import pexpect

        self._seq += 1
        tag = f"__KDGDB_{os.getpid()}_{self._seq}__"
        self.child.sendline(f"echo {tag}\\n")
        try:
            self.child.expect(re.compile(rf"(?<!echo ){tag}\r?\n"), timeout=timeout)
        except pexpect.TIMEOUT:
            raise DebuggerError(f"gdb did not answer within {timeout:g} s") from None
        except pexpect.EOF:
            raise DebuggerError("gdb exited: " + (self.child.before or "")[-500:]) from None
        return self.child.before.replace("\r\n", "\n").replace("\r", "")

    def run(self, command: str, timeout: float = 120.0) -> str:
        """Output of one gdb command (prompts removed)."""
        self.child.sendline(command)
        out = self._until_marker(timeout)
        return re.sub(r"^\(gdb\) ?", "", out, flags=re.M).strip("\n")

    def timed(self, command: str, timeout: float = 300.0) -> tuple[str, float]:
        t0 = time.monotonic()
        out = self.run(command, timeout)
        return out, time.monotonic() - t0

    def close(self) -> None:
        if self.child.isalive():
            try:
                self.child.sendline("kd-detach-now")
                self.child.sendline("quit")
                self.child.expect([__import__("pexpect").EOF], timeout=10)
            except Exception:
                pass
        self.child.close(force=True)

    def __enter__(self) -> GdbDriver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def describe(argv: list[str]) -> str:
    return shlex.join(argv)


# --- the whole flow ------------------------------------------------------------

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


def _makefile_version(makefile: Path) -> str | None:
    try:
        head = makefile.read_text(errors="replace")[:600]
    except OSError:
        return None
    v = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL) = (\d+)", head, re.M))
    return f"{v['VERSION']}.{v['PATCHLEVEL']}.{v['SUBLEVEL']}" if len(v) == 3 else None


def distro_source_dir(release: str) -> Path | None:
    """Debian's linux-source of exactly this kernel's package version, as
    `kdebug kernel build` unpacked it (gdb then shows source lines)."""
    def version(pkg):
        try:
            r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                               text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    image = version(f"linux-image-{release}")
    if not image:
        return None
    major = ".".join(image.split(".")[:2])
    if version(f"linux-source-{major}") != image:
        return None
    upstream = image.split("-")[0].split("+")[0]
    for mk in sorted(cache_dir("kernels").glob(f"linux-source-{major}-*/src/Makefile")):
        if _makefile_version(mk) == upstream:
            return mk.parent
    return None


def _plan_for(kernel: dict, port: int, offset: int | None, a: AttachOptions, **extra) -> GdbPlan:
    vml = kernel.get("vmlinux")
    if not vml:
        raise DebuggerError(f"kernel {kernel.get('release', '?')} has no debug vmlinux: gdb would have no symbols",
                            hint="install its -dbg package or pass --vmlinux/--tree")
    srcs = list(a.source_dirs)
    if kernel.get("tree"):
        srcs.append(Path(kernel["tree"]))
    elif not srcs and kernel.get("source") == "distro":
        found = distro_source_dir(kernel.get("release", ""))
        if found:
            srcs.append(found)
    return GdbPlan(vmlinux=Path(vml), port=port, kaslr_offset=offset, batch=a.batch,
                   styled=not a.batch, commands=list(a.commands), files=list(a.files),
                   breaks=list(a.breaks), source_dirs=srcs,
                   kernel_scripts=Path(kernel["gdb_scripts"]) if kernel.get("gdb_scripts") else None,
                   index_cache=index_cache_dir(),
                   module_dirs=[Path(kernel["module_debug_dir"])] if kernel.get("module_debug_dir") else [],
                   **extra)


def attach_session(name: str | None, a: AttachOptions, echo=print) -> int:
    """gdb on a guest started by `kdebug boot`; the guest keeps running after."""
    from kdebug.guest.qmp import Qmp
    from kdebug.session import find_session

    s = find_session(name)
    if not s.gdb_port:
        raise DebuggerError(f"session {s.name} has no gdbstub (started with --gdb-port 0)")
    with Qmp(s.qmp_socket) as q:
        q.cmd("stop")
        try:
            offset = kaslr_offset_from_qmp(q, Path(s.kernel["vmlinux"]))
        except DebuggerError:
            q.cmd("cont")
            raise
    echo(f"kdebug: session {s.name}, gdb 127.0.0.1:{s.gdb_port}, KASLR offset {offset:#x}")
    plan = _plan_for(s.kernel, s.gdb_port, offset, a, detach_on_quit=True)
    try:
        rc = run_gdb(gdb_argv(plan), timeout=a.gdb_timeout).returncode
    finally:
        if s.alive():
            with Qmp(s.qmp_socket) as q:
                q.cmd("cont")
    return rc


def kgdb_serial_args(port: int) -> tuple[str, ...]:
    """A second 8250 port (ttyS1) as a TCP server on loopback: gdb's line to KGDB."""
    return ("-serial", f"tcp:127.0.0.1:{port},server=on,wait=off")


def attach_kgdb(launch, a: AttachOptions, echo=print) -> int:
    """gdb over KGDB (kgdboc=ttyS1), the way one debugs real hardware: no
    gdbstub and no QEMU help; the KASLR offset comes from the guest's own
    /proc/kallsyms, read over its console before it stops."""
    import dataclasses

    from kdebug.launch.launcher import prepare
    from kdebug.launch.qemu import boot, free_port
    from kdebug.session import new_session

    check_gdb()
    if launch.freeze:
        raise DebuggerError("--kgdb cannot --freeze: KGDB starts with the kernel", hint="use the gdbstub")
    launch.gdb_port = 0
    launch.append = [*launch.append, "kgdboc=ttyS1,115200"]
    session = new_session()
    try:
        prep = prepare(launch, session)
        cfg = prep.kernel.config
        if cfg is not None and cfg.values and not cfg.builtin("KGDB_SERIAL_CONSOLE"):
            raise DebuggerError(f"kernel {prep.kernel.release} has no KGDB_SERIAL_CONSOLE",
                                hint="build one with `kdebug kernel build` (launch/kconfig/debug.config)")
        port = free_port()
        plan = dataclasses.replace(prep.plan, extra_args=tuple(prep.plan.extra_args) + kgdb_serial_args(port))
        k = prep.kernel.to_dict()
        echo(f"kdebug: kernel {prep.kernel.release}, accel {prep.accel.name}, KGDB on ttyS1 = 127.0.0.1:{port}")
        with boot(plan, session, timeout=a.boot_timeout) as guest:
            line = guest.run("grep -w _stext /proc/kallsyms").output.split()
            if not line or int(line[0], 16) == 0:
                raise DebuggerError("the guest hides /proc/kallsyms addresses", hint="use --nokaslr")
            _, syms = read_vmlinux(Path(k["vmlinux"]), ["_stext"])
            offset = int(line[0], 16) - syms["_stext"]
            echo(f"kdebug: KASLR offset {offset:#x} (from the guest's /proc/kallsyms); entering KGDB (sysrq g)")
            # KGDB says "Waiting for remote debugger" at KERN_CRIT, under the
            # console loglevel a driven guest runs with (kdebug.loglevel=1).
            guest.child.sendline("dmesg -n 3; echo g > /proc/sysrq-trigger")
            guest.wait_for(r"KGDB: Waiting for remote debugger|Entering kdb", timeout=30)
            gplan = _plan_for(k, port, offset, a)
            with ConsoleDrain(guest):
                rc = run_gdb(gdb_argv(gplan), timeout=a.gdb_timeout).returncode
        return rc
    finally:
        session.remove()


def attach_new(launch, a: AttachOptions, echo=print) -> int:
    """Boot a guest (``launch`` is a LaunchOptions), stop it at its shell (or
    at the first instruction with freeze), run gdb, stop the guest afterwards."""
    from kdebug.guest.qmp import Qmp
    from kdebug.launch.launcher import prepare
    from kdebug.launch.qemu import READY, boot
    from kdebug.session import new_session

    check_gdb()
    if launch.freeze and not launch.nokaslr:
        # Before the kernel decompresses itself there is no offset to read.
        launch.nokaslr = True
        echo("kdebug: --freeze boots with nokaslr (the KASLR offset is chosen after the first instruction)")
    if launch.gdb_port == 0:
        launch.gdb_port = None
    session = new_session()
    ram = ram_file_path(session)
    try:
        prep = prepare(launch, session)
        k = prep.kernel.to_dict()
        echo(f"kdebug: kernel {prep.kernel.release}, accel {prep.accel.name}, "
             f"gdb 127.0.0.1:{prep.plan.gdb_port}")
        plan = share_ram(prep.plan, ram)
        with boot(plan, session, ready=None if launch.freeze else READY,
                  timeout=a.boot_timeout) as guest:
            offset = 0
            if not launch.freeze:
                echo(f"kdebug: guest at its shell in {guest.boot_seconds:.1f} s; stopping it")
                with Qmp(session.qmp_socket) as q:
                    q.cmd("stop")
                    offset = kaslr_offset_from_qmp(q, Path(k["vmlinux"]))
                echo(f"kdebug: KASLR offset {offset:#x}")
            held = hold_ram_file(ram, guest.child.pid)
            gplan = _plan_for(k, prep.plan.gdb_port, offset, a, ram_file=held)
            with ConsoleDrain(guest):
                rc = run_gdb(gdb_argv(gplan), timeout=a.gdb_timeout).returncode
        return rc
    finally:
        ram.unlink(missing_ok=True)
        session.remove()

