"""Debian's debuginfod (elfutils 0.188) for tests and benchmarks, in a private
network namespace: it has no listen-address option and binds every
interface, so it only ever sees a loopback of its own. Whatever must reach
it (kdebug, curl) runs in the same namespace through ``PrivateNet.argv``.
The namespace has its own mounts too, so a test can give kdebug a full or
read-only cache without touching the machine's."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

PORT = 8002


class PrivateNet:
    """A network (and mount) namespace with only loopback up, held open by a
    sleeping process of ours."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(["unshare", "-n", "-m", "--propagation", "private", "--",
                                        "sleep", "infinity"])
        ours = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self.holder.pid}/ns/net") == ours:
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("unshare -n did not make a namespace")
            time.sleep(0.01)
        self.run(["ip", "link", "set", "lo", "up"], check=True)

    def argv(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-n", "-m", "--", *argv]

    def run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(self.argv(argv), **kw)

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(self.argv(argv), **kw)

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


class Debuginfod:
    """``debuginfod -F DIR`` (or ``-U DIR`` for .deb files) in ``net``,
    following symlinks (-L), one scan, no rescans."""

    def __init__(self, net: PrivateNet, serve: Path, work: Path, *, debs: bool = False, port: int = PORT) -> None:
        self.net, self.serve, self.work, self.debs, self.port = net, serve, work, debs, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self, wait_for: tuple[str, ...] = (), timeout: float = 300) -> Debuginfod:
        self.work.mkdir(parents=True, exist_ok=True)
        log = open(self.work / "debuginfod.log", "ab")  # noqa: SIM115 -- the server's, closed by stop()
        self.proc = self.net.popen(["debuginfod", "-p", str(self.port), "-d", str(self.work / "index.sqlite"),
                                    "-L", "-U" if self.debs else "-F", str(self.serve), "-t", "0", "-g", "0"],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        for bid in wait_for:
            while not self.has(bid):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"debuginfod did not index {bid}: "
                                       + (self.work / "debuginfod.log").read_text()[-2000:])
                time.sleep(0.2)
        return self

    def has(self, build_id: str) -> bool:
        """The server answers ELF for ``build_id`` (curl, four bytes read)."""
        res = self.net.run(["sh", "-c", f"curl -sf {self.url}/buildid/{build_id}/debuginfo | head -c 4"],
                           capture_output=True, timeout=60)
        return res.stdout == b"\x7fELF"

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)  # nsenter execs: this is debuginfod itself

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
