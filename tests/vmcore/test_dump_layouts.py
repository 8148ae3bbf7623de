"""Real dumps laid out as machines leave them (Debian/Ubuntu kdump-tools,
RHEL kdump, kdebug's own capture directory) under a tmp /var/crash: triage
finds and groups them, and a dump whose log is unreadable reports the dmesg
saved beside it. kdump-tools' saved log is written by makedumpfile
--dump-dmesg, as kdump-tools does."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, need_tool, removed

STAMP, ERASED_STAMP = "202612020623", "202612020731"
RHEL_DIR = "127.0.0.1-2026-12-02-06:40:12"
PT_LOAD = 1


def _kdebug(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "kdebug.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)  # same file system: no copy of a 512 MB dump
    except OSError:
        dest.symlink_to(src)


def _elf_offset(path: Path, phys: int) -> int:
    """Where physical address ``phys`` lies in an ELF64 core's PT_LOADs."""
    with open(path, "rb") as f:
        head = f.read(64)
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, _, p_offset, _, p_paddr, p_filesz = struct.unpack_from("<IIQQQQ", table, i * phentsize)
        if p_type == PT_LOAD and p_paddr <= phys < p_paddr + p_filesz:
            return p_offset + phys - p_paddr
    raise AssertionError(f"physical address {phys:#x} is in no PT_LOAD of {path}")


def _erase_log(src: Path, vmlinux: Path, dump: Path, dmesg: Path) -> None:
    """A copy of an ELF dump with the pointer to the printk ring buffer
    (``prb``) poisoned as makedumpfile's erase filter poisons (with 'X':
    makedumpfile 1.7.2's filter cannot run on 6.12, so the bytes are written
    here), and beside it the log read from the intact dump by drgn's own
    get_dmesg, as a kdump writer saves it before the dump is filtered."""
    import drgn
    from drgn.helpers.linux.mm import follow_phys
    from drgn.helpers.linux.printk import get_dmesg

    prog = drgn.Program()
    prog.set_core_dump(str(src))
    prog.load_debug_info([str(vmlinux)])
    dmesg.write_bytes(get_dmesg(prog))
    phys = follow_phys(prog["init_mm"].address_of_(), prog.symbol("prb").address)
    offset = _elf_offset(src, phys)
    shutil.copyfile(src, dump)
    os.chmod(dump, 0o600)
    with open(dump, "r+b") as f:
        f.seek(offset)
        f.write(b"X" * 8)


@pytest.fixture(scope="module")
def var_crash(tmp_path_factory, qemu_dump, kdump_oops, kernel):
    need_tool("makedumpfile")
    root = tmp_path_factory.mktemp("layouts")
    crash = root / "var" / "crash"
    oops, sysrq = kdump_oops.vmcore_path, Path(qemu_dump("sysrq").path)
    # Debian/Ubuntu kdump-tools: the dump and the log makedumpfile read from it
    tools = crash / STAMP
    _link(oops, tools / f"dump.{STAMP}")
    r = subprocess.run(["makedumpfile", "--dump-dmesg", str(oops), str(tools / f"dmesg.{STAMP}")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    # kdump-tools again: a dump whose log is unreadable, its saved dmesg intact
    erased = crash / ERASED_STAMP
    erased.mkdir()
    _erase_log(sysrq, kernel.vmlinux, erased / f"dump.{ERASED_STAMP}", erased / f"dmesg.{ERASED_STAMP}")
    # RHEL kdump: <host>-<date>/vmcore and vmcore-dmesg.txt
    _link(sysrq, crash / RHEL_DIR / "vmcore")
    shutil.copyfile(erased / f"dmesg.{ERASED_STAMP}", crash / RHEL_DIR / "vmcore-dmesg.txt")
    # kdebug's own capture directory, elsewhere in the tree
    (root / "captures").mkdir()
    (root / "captures" / "oops").symlink_to(kdump_oops.directory, target_is_directory=True)
    # what kdump-tools also leaves in /var/crash: not dumps
    (crash / "kexec_cmd").write_text("/sbin/kexec -p --command-line=...\n")
    (crash / "202612010000").mkdir()
    (crash / "202612010000" / "dmesg.202612010000").write_text("[    0.000000] Linux version\n")
    yield root
    removed(root)


def test_find_every_layout(var_crash):
    from kdebug.vmcore.layouts import find_dumps

    found = [(str(s.vmcore.relative_to(var_crash)), s.layout, s.dmesg.name if s.dmesg else None)
             for s in find_dumps(var_crash)]
    assert found == [
        ("captures/oops/vmcore", "kdebug", None),
        (f"var/crash/{RHEL_DIR}/vmcore", "rhel-kdump", "vmcore-dmesg.txt"),
        (f"var/crash/{STAMP}/dump.{STAMP}", "kdump-tools", f"dmesg.{STAMP}"),
        (f"var/crash/{ERASED_STAMP}/dump.{ERASED_STAMP}", "kdump-tools", f"dmesg.{ERASED_STAMP}"),
    ]


def test_triage_groups_the_layouts(var_crash):
    res = _kdebug("triage", str(var_crash), "--json", "--no-crash", "--jobs", "2", "--timeout", "300")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["total"], doc["analysed"], doc["failed"]) == (4, 4, 0)
    # the same crash in two layouts groups together, whichever way it was left
    # (the signatures' own wording is test_postmortem_vmcore's business)
    groups = sorted((g["reason"], sorted(str(Path(p).relative_to(var_crash)) for p in g["dumps"]))
                    for g in doc["groups"])
    assert groups == [
        ("null-deref", ["captures/oops/vmcore", f"var/crash/{STAMP}/dump.{STAMP}"]),
        ("sysrq", [f"var/crash/{RHEL_DIR}/vmcore", f"var/crash/{ERASED_STAMP}/dump.{ERASED_STAMP}"]),
    ]
    by_name = {str(Path(d["path"]).relative_to(var_crash)): d for d in doc["dumps"]}
    # the erased dump's log came from its saved dmesg, and the entry says so
    erased = by_name[f"var/crash/{ERASED_STAMP}/dump.{ERASED_STAMP}"]
    assert erased["log_source"] == str(var_crash / "var" / "crash" / ERASED_STAMP / f"dmesg.{ERASED_STAMP}")
    assert {d["log_source"] for k, d in by_name.items() if d is not erased} == {"vmcore"}
    assert {d["layout"] for d in doc["dumps"]} == {"kdebug", "kdump-tools", "rhel-kdump"}


def test_unreadable_log_is_replaced_by_the_saved_one(var_crash):
    from kdebug.vmcore.layouts import read_saved_dmesg

    stamp_dir = var_crash / "var" / "crash" / ERASED_STAMP
    res = _kdebug("postmortem", str(stamp_dir), "--json", "--no-crash", "--quiet")
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    saved = stamp_dir / f"dmesg.{ERASED_STAMP}"
    assert rep["log_source"] == str(saved)
    assert any("own log is unreadable" in w and str(saved) in w for w in rep["warnings"])
    # the log shown is the saved file's, record for record
    tail = read_saved_dmesg(saved)[-len(rep["log_tail"]):]
    assert [(r["timestamp_ns"], r["text"]) for r in rep["log_tail"]] == [(r.timestamp_ns, r.text) for r in tail]
    # and the report reads as the intact dump's does
    intact = _kdebug("postmortem", str(var_crash / "var" / "crash" / RHEL_DIR), "--json", "--no-crash", "--quiet")
    assert intact.returncode == 0, intact.stderr
    assert rep["signature"] == json.loads(intact.stdout)["signature"]


def test_no_dump_is_one_line(tmp_path, var_crash):
    empty = tmp_path / "var" / "crash"
    empty.mkdir(parents=True)
    for cmd in ("triage", "postmortem"):
        res = _kdebug(cmd, str(empty), timeout=120)
        assert res.returncode == 1 and "Traceback" not in res.stderr
        (line,) = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert line.startswith("kdebug: error: no dump")
    res = _kdebug("postmortem", str(var_crash), "--no-crash", timeout=120)
    assert res.returncode == 1
    (line,) = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert "holds 4 dumps" in line and "kdebug triage" in line
