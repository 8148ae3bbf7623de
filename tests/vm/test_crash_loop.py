"""kdebug crash-loop: boot, sysrq-c, QEMU dump and the drgn report, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT, need_tool


def test_crash_loop_sysrq(tmp_path, kernel):
    need_tool("qemu-system-x86_64")
    out = tmp_path / "cap"
    res = subprocess.run([sys.executable, "-m", "kdebug.cli.main", "crash-loop", "--trigger", "sysrq",
                          "--out", str(out), "--no-crash", "--format", "json", "-o", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith("kdebug post-mortem: sysrq: crash triggered in sysrq_handle_crash")
    stages = [ln for ln in res.stderr.splitlines() if "] capture:" in ln or "drgn report ready" in ln]
    assert len(stages) == 3, res.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["panic"]["reason"] == "sysrq" and doc["panic"]["task"]["comm"] == "sh"
    assert (out / "vmcore").is_file() and (out / "capture.json").is_file()
    # the report is kept beside the dump, private like it
    saved = json.loads((out / "report.json").read_text())
    assert saved["panic"] == doc["panic"]
    assert "sysrq_handle_crash" in (out / "report.html").read_text()
    assert (out / "report.json").stat().st_mode & 0o777 == 0o600
