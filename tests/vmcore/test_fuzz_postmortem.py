"""The end-to-end mutation test (issue 22): copies of this run's real kdump
capture (the kdump_oops fixture: no boot of its own) with 1-16 random bytes
changed in their first 64 KiB, through `kdebug postmortem --no-crash`. Each
ends in one `kdebug: error:` line naming where the dump is damaged (exit 1,
no `internal error:`, no traceback) or in a report that agrees with the
unmodified dump's on release, build-id and title unless the damage covers
where those come from (tests/vmcore/mutate.py check_report). A fixed seed
and 6 copies per kernel here; bench/fuzz.py runs hundreds.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from tests.vmcore.mutate import check_report, identity, layout, mutate

KDEBUG = [sys.executable, "-m", "kdebug.cli.main"]
COPIES = 6


def _postmortem(path) -> subprocess.CompletedProcess:
    return subprocess.run([*KDEBUG, "postmortem", "--no-crash", "--format", "json", "-q", str(path)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def baseline(kdump_oops):
    r = _postmortem(kdump_oops.vmcore_path)
    assert r.returncode == 0, r.stderr
    return kdump_oops.vmcore_path, json.loads(r.stdout)


@pytest.mark.parametrize("copy", range(COPIES))
def test_a_damaged_dump_is_one_line_or_a_faithful_report(baseline, tmp_path, copy):
    src, base = baseline
    path = tmp_path / "vmcore"
    recipe = mutate(src, path, random.Random(2200 + copy))
    r = _postmortem(path)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, (recipe, r.stderr[-2000:])
    if r.returncode != 0:
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("kdebug: error:")]
        assert r.returncode == 1 and len(errors) == 1, (recipe, r.stderr)
        assert str(path) in errors[0], errors  # it names the dump, and what could not be read in it
        return
    got = json.loads(r.stdout)
    why = check_report(base, got, sorted(recipe), layout(src))
    assert why is None, (why, recipe, identity(base), identity(got))
