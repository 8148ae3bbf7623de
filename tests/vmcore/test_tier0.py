"""Tier 0 on real dumps of each kernel generation (the session's kdump oops
capture and QEMU sysrq dump; no boot of its own): with every local source of
debug info hidden (KDEBUG_DEBUG_DIRS and KDEBUG_CACHE empty, no
DEBUGINFOD_URLS, the dump alone in a directory), `kdebug postmortem` gives a
tier-0 report whose signature and kernel facts equal the full report's of
the same dump, and `kdebug triage` groups the dumps by signature."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kdebug.analysis.debuginfo import DrgnDebuginfo
from kdebug.analysis.log import collect_log
from kdebug.analysis.program import open_program
from kdebug.decode.printk import prb_layout
from kdebug.decode.vmcoreinfo import VmcoreinfoDebuginfo
from kdebug.report.classify import MACHINERY
from kdebug.vmcore.locate import open_dump

KDEBUG = [sys.executable, "-m", "kdebug.cli.main"]


@pytest.fixture(scope="module")
def hidden(tmp_path_factory):
    """An environment in which kdebug finds no debug info at all."""
    d = tmp_path_factory.mktemp("nodebug")
    (d / "debug").mkdir()
    (d / "cache").mkdir()
    env = {**os.environ, "KDEBUG_DEBUG_DIRS": str(d / "debug"), "KDEBUG_CACHE": str(d / "cache"),
           "DEBUGINFOD_URLS": ""}
    return env


def _alone(tmp_path, name, vmcore):
    """The dump by itself (no capture.json naming its vmlinux)."""
    d = tmp_path / name
    d.mkdir()
    (d / "vmcore").symlink_to(vmcore)
    return d / "vmcore"


def _dump(request, which: str):
    """Each test asks only for the dumps it uses (each is made once per session)."""
    if which == "sysrq":
        return request.getfixturevalue("qemu_dump")("sysrq").path
    return request.getfixturevalue("kdump_oops").directory / "vmcore"


@pytest.mark.parametrize("which", ["oops", "sysrq"])
def test_tier0_report_without_debug_info_equals_the_full_one(which, request, report_of, hidden, tmp_path):
    path = _dump(request, which)
    full = report_of(path)
    res = subprocess.run([*KDEBUG, "postmortem", str(_alone(tmp_path, which, path)), "--json", "-q"],
                         env=hidden, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["tier"] == 0 and full.tier == 1
    assert doc["signature"] == full.signature
    nd = doc["nodebug"]
    assert nd["package"] == f"linux-image-{full.system.release}-dbg" and nd["symbols"] == "kallsyms"
    assert any("no debug vmlinux" in w or "debug info" in w for w in doc["warnings"])
    s, f = doc["system"], full.system
    for key in ("release", "version", "build_id", "arch", "hostname", "cpus", "memory_kb", "taint", "cmdline",
                "kaslr_offset"):
        assert s[key] == getattr(f, key), key
    # The crash time is VMCOREINFO's CRASHTIME (kdump); a QEMU dump has none, and
    # the kernel's wall clock (the timekeeper) needs types: tier 0 says none.
    assert s["crash_time"] == (f.crash_time if which == "oops" else None)
    p = doc["panic"]
    assert (p["message"], p["reason"], p["cpu"]) == (full.panic.message, full.panic.reason, full.panic.cpu)
    assert nd["task"] == f"{full.panic.task.pid} {full.panic.task.comm}"
    # Past the panic machinery (dump_stack, panic), the kernel's own trace names
    # the frames drgn unwinds from the saved registers, in the same order.
    full_names = [fr.function for fr in full.panic.backtrace]
    named = [fr["function"] for fr in p["backtrace"] if fr["function"] not in MACHINERY][:3]
    assert len(named) == 3 and all(n in full_names for n in named), (named, full_names)
    at = [full_names.index(n) for n in named]
    assert at == sorted(at), (named, full_names)
    assert [r["text"] for r in doc["log_tail"]] == [r.text for r in full.log_tail]


@pytest.mark.parametrize("which", ["oops", "sysrq"])
def test_vmcoreinfo_layout_and_log_equal_drgns(which, request):
    """VMCOREINFO as kdebug.decode's third source: the printk layout equals the
    one drgn's types give, and the tier-0 log equals drgn's printk helper's."""
    from kdebug.analysis.nodebug import NoDebugProgram

    dump = open_dump(_dump(request, which))
    prog, _ = open_program(dump)
    assert prb_layout(VmcoreinfoDebuginfo(dump.info.vmcoreinfo)) == prb_layout(DrgnDebuginfo(prog))
    facts = NoDebugProgram(dump.path, dump.info.vmcoreinfo).facts()
    assert facts.log == collect_log(prog) and facts.log


def test_triage_groups_dumps_with_no_debug_info(request, report_of, hidden, tmp_path):
    dumps = {w: _dump(request, w) for w in ("oops", "sysrq")}
    root = tmp_path / "crash"
    root.mkdir()
    for name, path in dumps.items():
        for copy in ("a", "b"):  # two machines that crashed the same way
            _alone(root, f"{name}-{copy}", path)
    res = subprocess.run([*KDEBUG, "triage", str(root), "--no-crash", "--json"], env=hidden,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    groups = {g["signature"]: g["count"] for g in doc["groups"]}
    assert groups == {report_of(p).signature: 2 for p in dumps.values()}
    assert [d["tier"] for d in doc["dumps"]] == [0] * 4
