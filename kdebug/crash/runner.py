"""Run crash non-interactively on a command file from crash_ext/, with a
timeout, one output file per command, kdebug's extension loaded when it can
be built. Of the crash binaries on this host (kdebug's build, PATH's, the
system's) the one that can read the dump's kernel runs
(kdebug.crash.support.choose_crash); when none can, that is said in one
line and crash does not start. A crash that stops before its first command
cannot read this dump: that is said in one line (naming the crash release
that can, where known) and not retried; a run that hangs is retried once in
--minimal mode."""

from __future__ import annotations

import mmap
import os
import shutil
import signal
import subprocess
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from kdebug.crash.extension import ExtensionError, build_extension
from kdebug.crash.index import for_crash
from kdebug.crash.record import CrashRun
from kdebug.crash.support import MARKERS, CrashBinary, CrashChoice, cannot_open, choose_crash, probe_symbols
from kdebug.decode.elfsyms import ElfSymsError, read_vmlinux
from kdebug.paths import tool_candidates
from kdebug.resources import CRASH_EXT, data_path

#: Commands kdebug's extension adds; their lines are left out when it cannot be built.
EXTENSION_COMMANDS = ("extend", "kdps")


@lru_cache(maxsize=8)
def crash_version(crash: str = "crash") -> str:
    try:
        out = subprocess.run([crash, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    return lines[0] if lines else ""


@lru_cache(maxsize=16)
def _inspect(path: str, _stamp: tuple[int, int]) -> CrashBinary:
    markers = set()
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            markers = {m for m in MARKERS if data.find(m) >= 0}
    except (OSError, ValueError):
        pass
    return CrashBinary(path, crash_version(path), frozenset(markers))


def inspect_crash(crash: str) -> CrashBinary:
    """A crash binary (a path or a name on PATH) and the fixes it carries."""
    path = shutil.which(crash) or crash
    try:
        st = os.stat(path)
    except OSError:
        return CrashBinary(path, "", frozenset())
    return _inspect(path, (st.st_mtime_ns, st.st_size))


def crash_binaries() -> list[CrashBinary]:
    """Every crash on this host, in kdebug's order: its own builds, PATH's, the system's."""
    return [inspect_crash(str(p)) for p in tool_candidates("crash")]


def have_crash() -> bool:
    return bool(tool_candidates("crash"))


def pick_crash(vmlinux: Path) -> CrashChoice:
    """The crash that can read this vmlinux's kernel, of those on this host."""
    return choose_crash(crash_binaries(), _vmlinux_symbols(vmlinux))


def _binary_has(crash: str):
    """marker -> whether the crash binary carries that string (the code of a fix)."""
    return inspect_crash(crash).has


def _vmlinux_symbols(vmlinux: Path) -> set[str] | None:
    try:
        return set(read_vmlinux(vmlinux, probe_symbols())[1])
    except (OSError, ElfSymsError):
        return None


def command_text(script: str, outdir: Path, extension: Path | None) -> str:
    """The command file crash reads: comments dropped, @OUT@ and @EXT@ filled
    in, and the extension's commands left out when there is no extension."""
    text = (data_path(CRASH_EXT) / f"{script}.crash").read_text()
    lines = []
    for ln in text.splitlines():
        if not ln.strip() or ln.startswith("#"):
            continue
        if extension is None and ln.split()[0] in EXTENSION_COMMANDS:
            continue
        lines.append(ln.replace("@OUT@", str(outdir)).replace("@EXT@", str(extension)))
    return "\n".join(lines) + "\n"


class CrashProcess:
    """One crash started in the background; ``result()`` waits for it."""

    def __init__(self, vmlinux: Path, vmcore: Path, script: str = "report", timeout: float = 120.0,
                 minimal: bool = False, crash: str | None = None) -> None:
        """``crash``: the binary to run; None: the one :func:`pick_crash` chooses for this kernel."""
        self.vmlinux = for_crash(Path(vmlinux))  # its indexed copy, when setup made one
        self.vmcore = Path(vmcore)
        self.script = script
        self.timeout = timeout
        self.minimal = minimal
        self.started = time.monotonic()
        self.outdir = Path(tempfile.mkdtemp(prefix="kdebug-crash-"))
        self.extension_error = ""
        self.proc = None
        self.error = ""
        self.unsupported: str | None = None
        if crash is None:
            choice = pick_crash(Path(vmlinux))
            self.crash = choice.binary.path if choice.binary else ""
            self.chosen = choice.reason  # which crash, and why
            if choice.binary is None:
                self.error, self.unsupported = choice.reason, choice.unsupported
                return
        else:
            self.crash, self.chosen = crash, crash
        extension = None
        if "@EXT@" in (data_path(CRASH_EXT) / f"{script}.crash").read_text():
            try:
                extension = build_extension(self.crash)
            except ExtensionError as e:
                self.extension_error = str(e)
        cmdfile = self.outdir / "commands"
        cmdfile.write_text(command_text(script, self.outdir, extension))
        argv = [self.crash, "-s", *(["--minimal"] if minimal else []), str(self.vmlinux), str(vmcore), "-i",
                str(cmdfile)]
        try:
            # Its own session, so a timeout kills crash and the gdb inside it together.
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, errors="replace",
                                         start_new_session=True)
        except OSError as e:
            self.error = f"cannot start crash: {e}"

    def _run(self, ok: bool, **kw) -> CrashRun:
        return CrashRun(ok, kw.pop("seconds", time.monotonic() - self.started), mode=self._mode,
                        version=crash_version(self.crash) if self.crash else "",
                        extension_error=self.extension_error, **kw)

    def result(self) -> CrashRun:
        try:
            if self.proc is None:
                return self._run(False, seconds=0.0, error=self.error, unsupported=self.unsupported)
            left = max(1.0, self.timeout - (time.monotonic() - self.started))
            try:
                console, _ = self.proc.communicate(timeout=left)
            except subprocess.TimeoutExpired:
                self._kill()
                return self._run(False, outputs=self._outputs(), timed_out=True,
                                 error=f"crash did not finish within {self.timeout:g} s")
            secs = time.monotonic() - self.started
            outputs = self._outputs()
            rc = self.proc.returncode
            if rc < 0:
                # Killed from outside (a user, the OOM killer): says nothing
                # about whether crash can read this kernel.
                return self._run(False, seconds=secs, outputs=outputs, console=console,
                                 error=f"crash was killed by {signal.Signals(-rc).name}")
            if not outputs and rc != 0:
                # Not one command ran: crash could not set up a session on
                # this vmlinux and dump, and would fail the same way again.
                line = cannot_open(crash_version(self.crash), _vmlinux_symbols(self.vmlinux) or set(), console,
                                   _binary_has(self.crash), rc)
                return self._run(False, seconds=secs, console=console, error=line, unsupported=line)
            if rc != 0 or not outputs:
                last = [ln for ln in console.strip().splitlines() if ln.strip()]
                why = last[-1] if last else f"exit status {rc}"
                return self._run(False, seconds=secs, outputs=outputs, console=console,
                                 error=f"crash failed: {why}")
            return self._run(True, seconds=secs, outputs=outputs, console=console)
        finally:
            shutil.rmtree(self.outdir, ignore_errors=True)

    @property
    def _mode(self) -> str:
        return "minimal" if self.minimal else "full"

    def _outputs(self) -> dict[str, str]:
        return {p.stem: p.read_text(errors="replace") for p in self.outdir.glob("*.txt")}

    def _kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()

    def serves(self, vmlinux: Path, vmcore: Path, script: str = "report") -> bool:
        """Whether this run is the one a report on ``vmcore`` would start (crash-loop starts
        it as soon as the dump is whole)."""
        try:
            same = os.path.samefile(self.vmcore, vmcore)
        except OSError:
            return False
        return same and self.script == script and self.vmlinux == for_crash(Path(vmlinux))

    def cancel(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._kill()
        shutil.rmtree(self.outdir, ignore_errors=True)


def run_crash(vmlinux: Path, vmcore: Path, timeout: float = 120.0, crash: str | None = None,
              started: CrashProcess | None = None) -> CrashRun:
    """The report's command file (or the run ``started`` already), then, only
    if that hung, --minimal, which skips the task table where crash most
    often hangs and still reads the log. ``crash``: None for the one that can
    read this kernel (:func:`pick_crash`)."""
    if started is None and (not have_crash() if crash is None else shutil.which(crash) is None):
        return CrashRun(False, 0.0, error="crash is not installed (apt-get install crash)")
    first = started or CrashProcess(vmlinux, vmcore, "report", timeout, crash=crash)
    run = first.result()
    if run.ok or not run.timed_out:
        return run
    retry = CrashProcess(vmlinux, vmcore, "minimal", min(timeout, 60.0), minimal=True,
                         crash=first.crash).result()
    retry.error = f"{run.error}; retried with --minimal: " + ("ok" if retry.ok else retry.error)
    retry.seconds += run.seconds
    return retry
