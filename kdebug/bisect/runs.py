"""One run of the reproducer, decided from the console alone (adapter).

The guest boots with kdebug's capture steps (``--setup``, ``--panic-on``,
the trigger or ``--run`` script) but without a dump: no pvpanic device and
no crashkernel=, so a panic prints its whole report, reaches ``---[ end
Kernel panic`` and, with the profile's ``panic=-1`` and QEMU's
``-no-reboot``, ends QEMU. The console after the trigger names the crash
(:func:`kdebug.bisect.verdict.console_titles`).
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path

from kdebug.bisect.verdict import CLEAN, CRASHED, ERROR, HUNG, Run, console_titles, one_line
from kdebug.capture.steps import arm, fire, launch_options, run_setup, watch
from kdebug.capture.triggers import Trigger
from kdebug.errors import KdebugError
from kdebug.guest.qemu import Guest, boot
from kdebug.kernel import Kernel
from kdebug.plan.prepare import LaunchOptions, prepare
from kdebug.session import new_session

#: kernel/panic.c panic(): the last line it prints, after the consoles are flushed.
PANIC_END = re.compile(r"---\[ end Kernel panic")


@dataclass
class Reproducer:
    """What each run does: the crash-loop options bisect takes."""

    base: LaunchOptions  # kernel, memory, --append, --module, --add (fixed files)
    trigger: Trigger
    setup: tuple[str, ...] = ()
    panic_on: tuple[str, ...] = ("oops",)
    boot_timeout: float = 120.0
    panic_timeout: float | None = None  # None: the trigger's own


def run_once(rep: Reproducer, kernel: Kernel, files: dict[str, Path], console_log: Path) -> Run:
    """Boot, arm, fire, watch; the run's outcome and titles. The console is
    kept in ``console_log``."""
    base = dataclasses.replace(rep.base, extra_files={**rep.base.extra_files, **files}, gdb_port=0)
    lopts = launch_options(base, kernel, rep.trigger, pvpanic=False, crashkernel=None)
    session = new_session()
    guest: Guest | None = None
    t0 = time.monotonic()
    offset = 0
    try:
        prep = prepare(lopts, session, resolve_kernel=lambda *a: kernel)
        guest = boot(prep.plan, session, timeout=rep.boot_timeout)
        if rep.setup:
            run_setup(guest, rep.setup)
        arm(guest, rep.trigger, rep.panic_on)
        offset = fire(guest, rep.trigger)
        w = watch(guest, offset, rep.panic_timeout or rep.trigger.seconds, crash=PANIC_END)
        after = guest.transcript[offset:]
        titles = console_titles(after)
        if w.crashed or w.exited:
            outcome = CRASHED if titles or w.crashed else ERROR
        elif w.timed_out and not titles:
            outcome = HUNG
        else:
            outcome = CLEAN
        err = "QEMU exited with no report on the console" if outcome == ERROR else ""
        return Run(outcome, titles, time.monotonic() - t0, w.status, err, console_log.name)
    except KdebugError as e:
        after = guest.transcript[offset:] if guest is not None else ""
        titles = console_titles(after) if offset else []
        return Run(CRASHED if titles else ERROR, titles, time.monotonic() - t0, None,
                   one_line(e.message, 200), console_log.name)
    finally:
        if guest is not None:
            guest.close()
            console_log.write_text(guest.transcript.replace("\r\n", "\n"), errors="replace")
        elif session.console_log.is_file():
            console_log.write_text(session.console_log.read_text(errors="replace"))
        session.remove()


def excerpt(console: str, title: str, before: int = 2, after: int = 40) -> str:
    """The lines of ``console`` around the report named ``title``."""
    lines = console.replace("\r", "").split("\n")
    head = title.split(" in ")[0]
    for i, ln in enumerate(lines):
        if head and head in ln:
            return "\n".join(lines[max(0, i - before):i + after])
    return ""

