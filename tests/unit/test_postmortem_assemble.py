"""The report assembled from what drgn read (kdebug.postmortem.build.assemble):
how the vmlinux was paired shows when it was not by build-id."""

from __future__ import annotations

from pathlib import Path

from kdebug.model import FrameRecord, PrintkRecord, TaskRecord
from kdebug.postmortem.build import assemble
from kdebug.postmortem.collect import DrgnRead
from kdebug.report.model import EngineRun, PanicInfo, SystemInfo
from kdebug.report.render import render
from kdebug.vmcore.info import VmcoreInfo
from kdebug.vmcore.locate import Dump
from kdebug.vmcore.search import DEBUG_DIR, NO_BUILD_ID, Piece

LOG = ["sysrq: Trigger a crash", "Kernel panic - not syncing: sysrq triggered crash"]


def _read() -> DrgnRead:
    task = TaskRecord(pid=93, tgid=93, ppid=1, comm="sh", state="R", cpu=0, address=0xffff888001234000)
    panic = PanicInfo("sysrq triggered crash", "sysrq", 0, task,
                      [FrameRecord(0, 0xffffffff81000010, "panic"), FrameRecord(1, 0xffffffff81000020,
                                                                                "sysrq_handle_crash")])
    log = [PrintkRecord(i, 1000 * i, 0, t) for i, t in enumerate(LOG)]
    return DrgnRead(EngineRun("drgn", True, 0.5), log, "vmcore", LOG, True, panic, None,
                    SystemInfo("5.4.0-1-amd64"), [task], None, None, [], [], [], None, None)


def _dump(piece: Piece) -> Dump:
    info = VmcoreInfo(Path("/var/crash/vmcore"), "kdump", 1 << 20, {"OSRELEASE": "5.4.0-1-amd64"})
    return Dump(info, piece.path, None, info.path, vmlinux_piece=piece)


def test_a_vmlinux_paired_by_release_says_so():
    piece = Piece("vmlinux", "ab12", Path("/usr/lib/debug/boot/vmlinux-5.4.0-1-amd64"), DEBUG_DIR,
                  "/usr/lib/debug/boot", note=NO_BUILD_ID)
    r = assemble(_dump(piece), _read())
    assert r.warnings[0] == f"vmlinux: {NO_BUILD_ID}"
    assert f"vmlinux: {NO_BUILD_ID}" in render(r, "text")
    assert r.signature == "sysrq: crash triggered in sysrq_handle_crash"


def test_a_vmlinux_paired_by_build_id_adds_nothing():
    piece = Piece("vmlinux", "ab12", Path("/usr/lib/debug/boot/vmlinux-5.4.0-1-amd64"), DEBUG_DIR,
                  "/usr/lib/debug/boot")
    assert assemble(_dump(piece), _read()).warnings == []
