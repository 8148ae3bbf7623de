"""Analyse many dumps, each in its own process with a timeout, so one bad
or hung dump costs only itself. Each worker hands back a record across the
process boundary (the Report, or a TriageError), pickled by multiprocessing:
nothing here reads another layer's rendered text."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kdebug.errors import KdebugError
from kdebug.postmortem.build import postmortem
from kdebug.report.triage import TriageEntry, TriageError
from kdebug.vmcore.layouts import DumpSite

#: A fresh interpreter per dump: fork from a threaded parent is unsafe, and
#: drgn's state must not leak from one dump to the next.
_CTX = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class TriageOptions:
    vmlinux: Path | None = None
    crash: bool = True
    crash_timeout: float = 120.0
    #: False: tier 0 for every dump (no debug info looked for).
    debuginfo: bool = True


def _worker(site: DumpSite, options: TriageOptions, conn) -> None:
    """Runs in the child: its own process group, so a timeout also ends the
    crash process it started."""
    os.setsid()
    try:
        report = postmortem(site.vmcore, vmlinux=options.vmlinux, crash=options.crash,
                            crash_timeout=options.crash_timeout, debuginfo=options.debuginfo)
        result: object = report
    except KdebugError as e:
        result = TriageError.of(e)
    except Exception as e:  # a bug in kdebug: this dump's entry says so, the rest go on
        result = TriageError(f"internal error: {type(e).__name__}: {e}", "internal")
    conn.send(result)
    conn.close()


def _kill(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the analysis and its crash child
    except OSError:
        proc.kill()  # it had not made its own group yet
    proc.join()


def analyse(site: DumpSite, options: TriageOptions, timeout: float,
            running: set | None = None) -> TriageEntry:
    """``running`` collects the live workers, for the caller to end on Ctrl-C."""
    recv, send = _CTX.Pipe(duplex=False)
    proc = _CTX.Process(target=_worker, args=(site, options, send), daemon=True)
    t0 = time.monotonic()
    proc.start()
    if running is not None:
        running.add(proc)
    send.close()  # the child's end: its exit makes recv see EOF
    try:
        if not recv.poll(timeout):
            _kill(proc)
            return TriageEntry(site, time.monotonic() - t0,
                               error=TriageError(f"timed out after {timeout:g} s", "timeout"))
        try:
            result = recv.recv()
        except EOFError:
            proc.join()
            return TriageEntry(site, time.monotonic() - t0, error=TriageError(
                f"the analysis process died (exit status {proc.exitcode})", "internal"))
    finally:
        recv.close()
        if running is not None:
            running.discard(proc)
    proc.join(30)
    if proc.is_alive():  # it answered but does not exit: the answer stands
        _kill(proc)
    secs = time.monotonic() - t0
    if isinstance(result, TriageError):
        return TriageEntry(site, secs, error=result)
    return TriageEntry(site, secs, report=result)


def triage(sites: list[DumpSite], *, jobs: int = 2, timeout: float = 300.0,
           options: TriageOptions | None = None, progress=None) -> list[TriageEntry]:
    """One entry per dump, in the order given; started largest first."""
    options = options or TriageOptions()
    results: list[TriageEntry] = []
    running: set = set()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        # Longest first (a dump's size is the best guess of its time before
        # reading it), so one long dump does not start last and run alone.
        futures: list = [None] * len(sites)
        for i in sorted(range(len(sites)), key=lambda i: -_size(sites[i].vmcore)):
            futures[i] = pool.submit(analyse, sites[i], options, timeout, running)
        for fut in futures:
            entry = fut.result()
            if progress:
                progress(entry)
            results.append(entry)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(running):  # Ctrl-C: no analysis outlives the command
            _kill(proc)
        raise
    pool.shutdown()
    return results


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
