"""Panic reason, message and signature on logs recorded from real dumps
(tests/fixtures/postmortem/<trigger>.log) and on hand-written log excerpts."""

from __future__ import annotations

import json
import re

import pytest

from kdebug.model import FrameRecord
from kdebug.report.classify import classify, culprit, normalize, panic_message, signature
from tests.conftest import FIXTURES


def _recorded(name: str) -> tuple[list[str], list[FrameRecord]]:
    doc = json.loads((FIXTURES / "postmortem" / f"{name}.json").read_text())
    frames = [FrameRecord(i, 0xffffffff81000000 + i, f["function"], file=f["file"], inline=f["inline"],
                          module=f["module"]) for i, f in enumerate(doc["frames"])]
    return doc["log"], frames


def _frames(*names: str) -> list[FrameRecord]:
    return [FrameRecord(i, 0xffffffff81000000 + i, n) for i, n in enumerate(names)]


# What each trigger (kdebug/capture/triggers.py, tests/vmcore/dumps.py) does to the
# guest, so what the report must say: recorded from real dumps of the Debian kernel.
TRUTH = {
    "sysrq": ("sysrq triggered crash", "sysrq", "sysrq: crash triggered in sysrq_handle_crash"),
    "nmi": ("NMI: Not continuing", "nmi", "panic: NMI: Not continuing in unknown_nmi_error"),
    "oops": ("BUG: kernel NULL pointer dereference, address: 0000000000000000", "null-deref",
             "BUG: kernel NULL pointer dereference in kdebug_trigger_oops"),
    "bug": ("Fatal exception", "bug", "kernel BUG in kdebug_trigger_bug"),
    "warn": ("kernel: panic_on_warn set ...", "warn", "WARNING in kdebug_trigger_warn"),
    "hung-task": ("hung_task: blocked tasks", "hung-task", "INFO: task hung in kdebug_trigger_hung"),
    "softlockup": ("softlockup: hung tasks", "soft-lockup", "BUG: soft lockup in kdebug_trigger_softlockup"),
    "oom": ("Out of memory: system-wide panic_on_oom is enabled", "oom", "out of memory in read_zero"),
}


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_recorded_dumps(name):
    lines, frames = _recorded(name)
    message, reason, title = TRUTH[name]
    assert panic_message(lines) == message
    assert classify(message, lines) == reason
    assert signature(reason, message, lines, frames) == title


def _shift(lines: list[str]) -> list[str]:
    """The same log after another boot: other addresses (KASLR), pids, CPUs, times."""
    def hexshift(m):
        return f"{int(m.group(0), 16) ^ 0x3c00000:0{len(m.group(0))}x}"
    out = [re.sub(r"(?<=PID: )\d+", "4242", ln) for ln in lines]
    out = [re.sub(r"(?<=CPU: )\d", "3", ln) for ln in out]
    out = [re.sub(r"(?<=task )(\S+):\d+", r"\1:999", ln) for ln in out]
    return [re.sub(r"ffff[0-9a-f]{12}", hexshift, ln) for ln in out]


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_signature_stable_across_reboots(name):
    lines, frames = _recorded(name)
    moved = _shift(lines)
    assert moved != lines
    msg, reason = panic_message(moved), classify(panic_message(moved), moved)
    assert signature(reason, msg, moved, frames) == TRUTH[name][2]


def test_signatures_differ_across_bugs():
    assert len({t[2] for t in TRUTH.values()}) == len(TRUTH)


# Hand-written excerpts in the kernel's own formats (lib/bug.c, mm/oom_kill.c,
# kernel/hung_task.c, kernel/watchdog.c, arch/x86/mm/fault.c).
EXCERPTS = {
    "bug": ["------------[ cut here ]------------", "kernel BUG at drivers/foo/bar.c:42!",
            "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI", "RIP: 0010:foo_release+0x12/0x30 [foo]",
            "Kernel panic - not syncing: Fatal exception"],
    "warn": ["------------[ cut here ]------------", "WARNING: CPU: 1 PID: 77 at fs/x.c:9 x_check+0x1/0x9",
             "RIP: 0010:x_check+0x1/0x9", "Kernel panic - not syncing: kernel: panic_on_warn set ..."],
    "hung-task": ["INFO: task cat:88 blocked for more than 10 seconds.", "Call Trace:", " <TASK>",
                  " __schedule+0x2b5/0x880", " schedule+0x5a/0xd0", " my_wait_forever+0x15/0x20 [m]",
                  "Kernel panic - not syncing: hung_task: blocked tasks"],
    "soft-lockup": ["watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [spin:99]",
                    "RIP: 0010:spin_forever+0x4/0x10 [m]", "Kernel panic - not syncing: softlockup: hung tasks"],
    "hard-lockup": ["Kernel panic - not syncing: Hard LOCKUP"],
    "oom": ["Out of memory and no killable processes...",
            "Kernel panic - not syncing: System is deadlocked on memory"],
    "oops": ["BUG: unable to handle page fault for address: ffffc90000bad000",
             "Oops: 0000 [#1] PREEMPT SMP NOPTI", "RIP: 0010:read_bad+0x9/0x20",
             "Kernel panic - not syncing: Fatal exception"],
    "other": ["Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"],
}


@pytest.mark.parametrize("reason", sorted(EXCERPTS))
def test_excerpts(reason):
    lines = EXCERPTS[reason]
    assert classify(panic_message(lines), lines) == reason


def test_excerpt_culprits():
    assert culprit("bug", EXCERPTS["bug"], []) == "foo_release"
    assert culprit("warn", EXCERPTS["warn"], []) == "x_check"
    assert culprit("hung-task", EXCERPTS["hung-task"], []) == "my_wait_forever"
    assert culprit("other", EXCERPTS["other"], _frames("panic", "mount_block_root")) == "mount_block_root"


def test_normalize_drops_addresses_and_numbers():
    assert normalize("BUG: unable to handle page fault for address: ffffc90000bad000") == \
        "BUG: unable to handle page fault for address: ADDR"
    assert normalize("Attempted to kill init! exitcode=0x0000000b") == "Attempted to kill init! exitcode=ADDR"
    assert normalize("stuck on CPU 3 pid 77.") == "stuck on CPU N pid N"


def test_snapshot_signature_names_where_blocked_tasks_wait():
    from kdebug.report.classify import snapshot_signature

    hung = _frames("__schedule", "schedule", "kdebug_trigger_hung", "kdebug_trigger_write", "proc_reg_write")
    io = _frames("__schedule", "io_schedule", "folio_wait_bit_common.isra.0", "filemap_fault")
    assert snapshot_signature([hung, hung, io]) == "snapshot: tasks blocked in kdebug_trigger_hung"
    assert snapshot_signature([io]) == "snapshot: tasks blocked in folio_wait_bit_common"
    assert snapshot_signature([_frames("__schedule", "schedule")]) == "snapshot: tasks blocked"
    assert snapshot_signature([]) == "snapshot: no blocked tasks"


@pytest.mark.parametrize("name", sorted(TRUTH) + sorted(EXCERPTS))
def test_no_crash_signature_looks_like_a_snapshot(name):
    # Even a panic whose message begins "snapshot" keeps the "panic: " headline.
    lines, frames = _recorded(name) if name in TRUTH else (EXCERPTS[name], _frames("x"))
    sig = signature(classify(panic_message(lines), lines), panic_message(lines), lines, frames)
    assert not sig.startswith("snapshot")
    odd = ["Kernel panic - not syncing: snapshot: tasks blocked in x"]
    assert signature(classify(panic_message(odd), odd), panic_message(odd), odd, []).startswith("panic: ")
