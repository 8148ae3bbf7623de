#!/usr/bin/env python3
"""Fuzzing, the long runs (issue 22); CI runs the short ones.

1. The readers (tests/unit/test_fuzz_readers.py) with more examples and a
   fresh random seed: ``--examples N`` per target (CI: 150, derandomized).
2. The end-to-end mutation run: N copies of a real kdump-compressed capture,
   each with 1-16 random bytes changed in its first 64 KiB (disk_dump_header,
   kdump_sub_header with the ELF notes and VMCOREINFO, the page bitmaps),
   through `kdebug postmortem --no-crash --format json`. Each run must end in
   one `kdebug: error:` line (exit non-zero, no `internal error:`, no
   traceback) or a report (exit 0). A report must agree with the unmodified
   dump's on release, build-id and panic title unless the damage covers where
   those come from (check_report). Prints the figures; --keep DIR keeps the
   mutations that broke the rule (their recipe: offset -> byte).

    .venv/bin/python bench/fuzz.py [--dump KDUMP] [-n 120] [--seed 1] [--examples 2000] [--jobs 1]

Without --dump it takes the newest 6.1 kdump dump in kdebug's cache
(the vmcore tier's fixtures leave them there).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kdebug.paths import cache_dir  # noqa: E402
from kdebug.vmcore.info import read_dump  # noqa: E402
from tests.vmcore.mutate import Layout, check_report, identity, layout, mutate  # noqa: E402

KDEBUG = [sys.executable, "-m", "kdebug.cli.main"]


@dataclass
class Outcome:
    kind: str  # "report", "error", "internal", "traceback", "timeout", "differs"
    seconds: float
    line: str = ""
    recipe: dict = field(default_factory=dict)


def run_one(src: Path, work: Path, i: int, rng: random.Random, base: dict, lay: Layout,
            timeout: float) -> Outcome:
    path = work / f"m{i}.kdump"
    recipe = mutate(src, path, rng)
    t = time.monotonic()
    try:
        r = subprocess.run([*KDEBUG, "postmortem", "--no-crash", "--format", "json", "-q", str(path)],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome("timeout", time.monotonic() - t, recipe=recipe)
    finally:
        path.unlink(missing_ok=True)
    took = time.monotonic() - t
    err = r.stderr.strip().splitlines()
    last = err[-1] if err else ""
    if "Traceback" in r.stderr:
        return Outcome("traceback", took, last, recipe)
    if "internal error" in r.stderr:
        return Outcome("internal", took, last, recipe)
    if r.returncode != 0:
        ok = len([ln for ln in err if ln.startswith("kdebug: error:")]) == 1
        return Outcome("error" if ok else "traceback", took, last, recipe)
    why = check_report(base, json.loads(r.stdout), sorted(recipe), lay)
    return Outcome("differs" if why else "report", took, why or "", recipe)


def default_dump() -> Path:
    dumps = sorted((cache_dir("vmcores")).glob("*.kdump"), key=lambda p: p.stat().st_mtime, reverse=True)
    for d in dumps:
        if (read_dump(d).release or "").startswith("6.1."):
            return d
    if dumps:
        return dumps[0]
    raise SystemExit("no kdump dump in kdebug's cache: run the vmcore tier once, or give --dump")


def end_to_end(dump: Path, n: int, seed: int, jobs: int, keep: Path | None, timeout: float) -> int:
    info = read_dump(dump)
    print(f"end-to-end: {n} mutations of {dump} ({info.release}, {info.size / 1e6:.1f} MB), seed {seed}")
    t = time.monotonic()
    r = subprocess.run([*KDEBUG, "postmortem", "--no-crash", "--format", "json", "-q", str(dump)],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"the unmodified dump gives no report: {r.stderr.strip()}")
    base = json.loads(r.stdout)
    print(f"  unmodified: {identity(base)} in {time.monotonic() - t:.1f} s")
    lay = layout(dump)
    rng = random.Random(seed)
    rngs = [random.Random(rng.random()) for _ in range(n)]
    with tempfile.TemporaryDirectory(prefix="kdebug-fuzz-") as tmp, ThreadPoolExecutor(jobs) as pool:
        outs = list(pool.map(lambda i: run_one(dump, Path(tmp), i, rngs[i], base, lay, timeout), range(n)))
    counts: dict[str, int] = {}
    for o in outs:
        counts[o.kind] = counts.get(o.kind, 0) + 1
    secs = sorted(o.seconds for o in outs)
    print(f"  outcomes: {counts}; per run median {secs[len(secs) // 2]:.1f} s, max {secs[-1]:.1f} s")
    lines: dict[str, int] = {}
    for o in outs:
        if o.kind == "error":
            key = o.line.split(":", 3)[-1].strip()[:90]
            lines[key] = lines.get(key, 0) + 1
    for line, c in sorted(lines.items(), key=lambda x: -x[1])[:12]:
        print(f"    {c:4d}  {line}")
    bad = [o for o in outs if o.kind not in ("report", "error")]
    for o in bad:
        print(f"  BROKE THE RULE ({o.kind}): {o.line} recipe {o.recipe}")
    if keep is not None and bad:
        keep.mkdir(parents=True, exist_ok=True)
        for j, o in enumerate(bad):
            (keep / f"e2e-{seed}-{j}.json").write_text(json.dumps(
                {"dump_release": info.release, "kind": o.kind, "line": o.line,
                 "recipe": {str(k): v for k, v in sorted(o.recipe.items())}}, indent=1))
    return len(bad)


def readers(examples: int) -> int:
    """The reader properties with ``examples`` per target (a quarter for
    whole console logs) and hypothesis's own random seed each run."""
    env = {**os.environ, "KDEBUG_FUZZ_EXAMPLES": str(examples), "KDEBUG_FUZZ_RANDOM": "1"}
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
                        str(ROOT / "tests/unit/test_fuzz_readers.py")], env=env, capture_output=True, text=True)
    tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-300:]
    print(f"readers: {examples} examples per target, random seeds: {tail} ({time.monotonic() - t:.0f} s)")
    return r.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", type=Path)
    ap.add_argument("-n", type=int, default=120, help="mutated copies through kdebug postmortem")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--examples", type=int, default=2000, help="hypothesis examples per reader (0: skip)")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--keep", type=Path, help="write the recipes of rule-breaking mutations here")
    a = ap.parse_args()
    failed = 0
    if a.examples:
        failed += readers(a.examples)
    if a.n:
        failed += end_to_end(a.dump or default_dump(), a.n, a.seed, a.jobs, a.keep, a.timeout)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
