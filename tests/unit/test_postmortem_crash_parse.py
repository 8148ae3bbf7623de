"""crash output parsers on transcripts recorded from real QEMU dumps of the
Debian 6.1 kernel (tests/fixtures/crash/<trigger>/<command>.txt)."""

from __future__ import annotations

import pytest

from kdebug.crash.parse import (
    parse_bt,
    parse_kdps,
    parse_log,
    parse_mod,
    parse_sys,
    split_warnings,
    sys_cpus,
)
from tests.conftest import FIXTURES

CRASH = FIXTURES / "crash"


def _read(trigger: str, cmd: str) -> str:
    return (CRASH / trigger / f"{cmd}.txt").read_text()


def test_sys_sysrq():
    info = parse_sys(_read("sysrq", "sys"))
    assert info["RELEASE"] == "6.1.0-56-cloud-amd64"
    assert info["PANIC"] == "Kernel panic - not syncing: sysrq triggered crash"
    assert info["TASKS"] == "3" and sys_cpus(info) == 2
    assert info["MACHINE"].startswith("x86_64")


def test_sys_nmi():
    assert parse_sys(_read("nmi", "sys"))["PANIC"] == "Kernel panic - not syncing: NMI: Not continuing"


def test_bt_sysrq_panic_task():
    (bt,) = parse_bt(_read("sysrq", "bt"))
    assert (bt.pid, bt.cpu, bt.comm) == (106, 1, "sh")
    assert [f.function for f in bt.frames[:4]] == ["panic", "sysrq_handle_crash", "__handle_sysrq.cold",
                                                    "write_sysrq_trigger"]
    assert bt.frames[0].pc == 0xffffffff8b9cd0a8 and bt.frames[-1].index == 15


def test_bt_nmi_exception_frame():
    (bt,) = parse_bt(_read("nmi", "bt"))
    assert (bt.pid, bt.comm) == (0, "swapper/0")
    assert bt.exception_rip == "native_safe_halt+11"
    assert [f.function for f in bt.frames[:2]] == ["panic", "unknown_nmi_error.cold"]
    assert bt.frames[4].function == "native_safe_halt"


def test_bt_all_records_unreadable_stack():
    bts = parse_bt(_read("sysrq", "bt-a"))
    assert [(b.pid, b.cpu) for b in bts] == [(0, 0), (106, 1)]
    assert bts[0].frames == [] and any("read of stack" in e for e in bts[0].errors)


def test_mod():
    mods = {m.name: m for m in parse_mod(_read("sysrq", "mod"))}
    assert {"pvpanic", "qemu_fw_cfg", "virtio_pci"} <= set(mods)
    assert mods["pvpanic"].size == 16384


def test_log_and_warnings():
    log = parse_log(_read("sysrq", "log"))
    assert any(text == "Kernel panic - not syncing: sysrq triggered crash" for _, text in log)
    assert all(ts > 0 for ts, _ in log)
    assert split_warnings(_read("sysrq", "console"))[0].startswith("WARNING: active task")


def test_log_continuation_lines_lose_crash_indent():
    # crash indents a record's further lines to its text column; the kernel's
    # own indent ("  \"trace_clock=local\"") stays.
    log = dict((text.split("\n")[0], (ts, text)) for ts, text in parse_log(_read("sysrq-kdps", "log")))
    ts, text = log['Unstable clock detected, switching default tracing clock to "global"']
    assert ts == 1_593_479_000
    assert text.split("\n")[1:] == ["If you want to keep using the local clock, then add:",
                                     '  "trace_clock=local"', "on the kernel command line"]


@pytest.mark.parametrize("text", ["", "garbage\nmore garbage\n", "PID: x TASK"])
def test_parsers_tolerate_junk(text):
    assert parse_bt(text) == [] and parse_mod(text) == [] and parse_kdps(text).tasks == []
    assert not parse_kdps(text).complete
    assert parse_sys(text) == {} or "PID" in text


@pytest.mark.parametrize("trigger, drgn_names, expected", [
    ("sysrq", ["pvpanic_send_event", "pvpanic_panic_notify", "notifier_call_chain", "atomic_notifier_call_chain",
               "panic", "sysrq_handle_crash", "__handle_sysrq.cold", "write_sysrq_trigger", "proc_reg_write"],
     ["sysrq_handle_crash", "__handle_sysrq", "write_sysrq_trigger"]),
    # crash's stack scan shows stale frames (do_user_addr_fault) below the real ones.
    ("sysrq-stale", ["pvpanic_panic_notify", "panic", "sysrq_handle_crash", "__handle_sysrq.cold",
                     "write_sysrq_trigger"], ["sysrq_handle_crash", "__handle_sysrq", "write_sysrq_trigger"]),
    ("nmi", ["pvpanic_panic_notify", "panic", "nmi_panic", "unknown_nmi_error", "exc_nmi", "asm_exc_nmi",
             "native_safe_halt", "amd_e400_idle"], ["unknown_nmi_error", "native_safe_halt", "amd_e400_idle"]),
])
def test_top_frames_agree_between_engines(trigger, drgn_names, expected):
    from kdebug.crash.crosscheck import top_functions
    from kdebug.crash.parse import call_chain
    from kdebug.model import FrameRecord

    (bt,) = parse_bt(_read(trigger, "bt"))
    drgn_frames = [FrameRecord(i, 0, n) for i, n in enumerate(drgn_names)]
    assert top_functions(call_chain(bt)) == top_functions(drgn_frames) == expected
