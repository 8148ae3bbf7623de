"""kdebug crash-loop with crash: crash starts on the vmcore as soon as it is
whole (before the capture's drgn check ends), and the report adopts that run."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, need_tool


@pytest.mark.one_kernel  # crash 8.0.2 cannot open 6.12 dumps
def test_crash_starts_before_the_capture_ends(tmp_path, kernel):
    need_tool("qemu-system-x86_64", "crash", "makedumpfile")
    out = tmp_path / "cap"
    res = subprocess.run([sys.executable, "-m", "kdebug.cli.main", "crash-loop", "--method", "kdump",
                          "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stderr.splitlines()
    started = next(i for i, ln in enumerate(lines) if ln.endswith("crash: started on the dump"))
    summary = next(i for i, ln in enumerate(lines) if re.search(r"\] capture: preflight .* verify ", ln))
    assert started < summary  # during verify, not after the capture
    doc = json.loads((out / "report.json").read_text())
    crash = next(e for e in doc["engines"] if e["name"] == "crash")
    assert crash["ok"], crash
    # One crash run: its time counts from the early start, so it spans the report's drgn run too.
    assert crash["seconds"] > next(e for e in doc["engines"] if e["name"] == "drgn")["seconds"]
    verdicts = {c["item"]: c["verdict"] for c in doc["crosscheck"]}
    assert verdicts["release"] == verdicts["panic task"] == "agree", doc["crosscheck"]
