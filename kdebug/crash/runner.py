"""Run crash 8.x non-interactively on a command file from crash_ext/, with a
timeout, one output file per command; retry in --minimal mode on failure."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.resources import CRASH_EXT as _CRASH_EXT
from kdebug.resources import data_path

CRASH_EXT = data_path(_CRASH_EXT)


@dataclass
class CrashRun:
    ok: bool
    seconds: float
    outputs: dict[str, str] = field(default_factory=dict)  # "sys" -> its output
    console: str = ""  # crash's own stdout/stderr: warnings and per-command errors
    error: str = ""
    mode: str = "full"  # or "minimal"
    version: str = ""


def crash_version() -> str:
    try:
        out = subprocess.run(["crash", "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    return lines[0] if lines else ""


class CrashProcess:
    """One crash started in the background; ``result()`` waits for it."""

    def __init__(self, vmlinux: Path, vmcore: Path, script: str = "report", timeout: float = 120.0,
                 minimal: bool = False, crash: str = "crash") -> None:
        self.timeout = timeout
        self.minimal = minimal
        self.started = time.monotonic()
        self.outdir = Path(tempfile.mkdtemp(prefix="kdebug-crash-"))
        text = (CRASH_EXT / f"{script}.crash").read_text().replace("@OUT@", str(self.outdir))
        cmdfile = self.outdir / "commands"
        cmdfile.write_text("\n".join(ln for ln in text.splitlines() if not ln.startswith("#")) + "\n")
        argv = [crash, "-s", *(["--minimal"] if minimal else []), str(vmlinux), str(vmcore), "-i", str(cmdfile)]
        self.proc = None
        self.error = ""
        try:
            # Its own session, so a timeout kills crash and the gdb inside it together.
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, errors="replace",
                                         start_new_session=True)
        except OSError as e:
            self.error = f"cannot start crash: {e}"

    def result(self) -> CrashRun:
        try:
            if self.proc is None:
                return CrashRun(False, 0.0, error=self.error, mode=self._mode)
            left = max(1.0, self.timeout - (time.monotonic() - self.started))
            try:
                console, _ = self.proc.communicate(timeout=left)
            except subprocess.TimeoutExpired:
                self._kill()
                return CrashRun(False, time.monotonic() - self.started, self._outputs(),
                                error=f"crash did not finish within {self.timeout:g} s", mode=self._mode)
            secs = time.monotonic() - self.started
            outputs = self._outputs()
            rc = self.proc.returncode
            if rc != 0 or not outputs:
                last = [ln for ln in console.strip().splitlines() if ln.strip()]
                why = last[-1] if last else f"exit status {rc}"
                return CrashRun(False, secs, outputs, console, error=f"crash failed: {why}", mode=self._mode)
            return CrashRun(True, secs, outputs, console, mode=self._mode)
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

    def cancel(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._kill()
        shutil.rmtree(self.outdir, ignore_errors=True)


def run_crash(vmlinux: Path, vmcore: Path, timeout: float = 120.0, crash: str = "crash") -> CrashRun:
    """The full command file, then --minimal (log only) if that failed."""
    if shutil.which(crash) is None:
        return CrashRun(False, 0.0, error="crash is not installed (apt-get install crash)")
    run = CrashProcess(vmlinux, vmcore, "report", timeout, crash=crash).result()
    if run.ok:
        return run
    retry = CrashProcess(vmlinux, vmcore, "minimal", min(timeout, 60.0), minimal=True, crash=crash).result()
    retry.error = f"{run.error}; retried with --minimal: " + ("ok" if retry.ok else retry.error)
    retry.seconds += run.seconds
    return retry
