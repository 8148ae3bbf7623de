#!/usr/bin/env python3
"""One command's round trip in a booted guest: kdebug's shell protocol
(`Guest.run`: the output to a file in the guest, printed escaped once the
command is done, kernel records taken out) against its peer, the same
markers with the output straight on the console (the protocol before the
escape, which let kernel records into a command's output), on the same guest
in the same run, rounds interleaved, medians.

Commands: `true`, `cat /proc/version`, and `dmesg` (a few hundred lines).

    .venv/bin/python bench/command.py [-n 50] [--release 6.12]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdebug.guest.console import cuttable, printed_marker  # noqa: E402
from kdebug.guest.qemu import Guest, boot  # noqa: E402
from kdebug.plan.prepare import LaunchOptions, prepare  # noqa: E402
from kdebug.session import new_session  # noqa: E402

COMMANDS = ["true", "cat /proc/version", "dmesg"]


def on_the_console(g: Guest, command: str, n: int) -> tuple[float, int]:
    """The peer: the command's output straight on the tty between the same markers."""
    tag = f"{os.getpid()}p{n}"
    begin = f"__KD_B_{tag}__"
    t0 = time.monotonic()
    g.send(f"echo {begin}; ( {command}\n) </dev/null; echo __KD_E_{tag}_$?__")
    g.expect([re.compile(printed_marker(begin))], 30)
    i, m = g.expect([re.compile(cuttable(f"__KD_E_{tag}_" + r"(\d+)" + "__"))], 30)
    assert i == 0, i
    return time.monotonic() - t0, len(g.child.before)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--release")
    args = ap.parse_args()
    session = new_session()
    prep = prepare(LaunchOptions(release=args.release), session)
    g = boot(prep.plan, session, timeout=120)
    rows: dict[tuple[str, str], list[float]] = {}
    sizes: dict[str, int] = {}
    try:
        g.run("true")  # the shell set up
        for k in range(args.n):
            for c in COMMANDS:
                r = g.run(c)
                rows.setdefault((c, "kdebug"), []).append(r.seconds)
                secs, size = on_the_console(g, c, k)
                rows.setdefault((c, "peer"), []).append(secs)
                sizes[c] = max(sizes.get(c, 0), size)
    finally:
        g.close()
        session.remove()
    print(f"kernel {prep.kernel.release}, {args.n} rounds, medians")
    print(f"{'command':<20} {'output':>8} {'kdebug s':>9} {'peer s':>8} {'ratio':>6}")
    for c in COMMANDS:
        ours, peer = statistics.median(rows[(c, "kdebug")]), statistics.median(rows[(c, "peer")])
        print(f"{c:<20} {sizes[c]:>7}B {ours:>9.3f} {peer:>8.3f} {ours / peer:>6.2f}")


if __name__ == "__main__":
    main()
