"""Tier 0, the report from a dump with no debug info: the pure parts.

VMCOREINFO as kdebug.decode's third source of layouts (on the VMCOREINFO of
real 6.1 and 6.12 dumps, tests/fixtures/vmcoreinfo), the taint letters, the
saved registers, the crash's stack from the log and the signature it gives
against the full report's (the recorded dumps of tests/fixtures/postmortem
carry drgn's backtrace), the schema and renderers, and the crash database's
tier column (migration from schema 1, upgrade keeping first/last seen)."""

from __future__ import annotations

import json
import sqlite3
import struct

import drgn
import pytest

from kdebug.analysis.nodebug import READ_ERRORS, NoDebugProgram
from kdebug.decode.printk import prb_layout, read_ring
from kdebug.decode.structs import Field
from kdebug.decode.vmcoreinfo import VmcoreinfoDebuginfo, taint_letters
from kdebug.fleet.db import SCHEMA_VERSION, open_db
from kdebug.fleet.records import row_of
from kdebug.fleet.summary import summarize
from kdebug.format import format_frame
from kdebug.model import FrameRecord, PrintkRecord
from kdebug.postmortem import tier0
from kdebug.postmortem.tier0 import fix_line, log_stack
from kdebug.report.classify import classify, culprit, panic_message, signature
from kdebug.report.load import report_from_dict
from kdebug.report.model import SCHEMA_VERSION as REPORT_SCHEMA
from kdebug.report.model import NoDebugInfo, PanicInfo, Report, SystemInfo
from kdebug.report.render import render
from kdebug.report.triage import TriageEntry
from kdebug.vmcore.debuginfod import CacheError
from kdebug.vmcore.info import VmcoreInfo, parse_vmcoreinfo
from kdebug.vmcore.layouts import DumpSite
from kdebug.vmcore.search import debug_package
from tests.conftest import FIXTURES, ROOT

SCHEMA = ROOT / "kdebug" / "report" / "schema" / "report-v1.json"


def _vmcoreinfo(gen: str) -> dict[str, str]:
    return parse_vmcoreinfo((FIXTURES / "vmcoreinfo" / f"{gen}.txt").read_text())


@pytest.mark.parametrize("gen", ["6.1", "6.12"])
def test_printk_layout_from_vmcoreinfo_is_the_headers(gen):
    # kernel/printk/printk_ringbuffer.h (v5.10+): struct prb_desc { atomic_long_t
    # state_var; struct prb_data_blk_lpos text_blk_lpos { begin, next } };
    # struct printk_info { u64 seq; u64 ts_nsec; u16 text_len; u8 facility;
    # u8 flags:5; u8 level:3; u32 caller_id; struct dev_printk_info dev_info; }
    lay = prb_layout(VmcoreinfoDebuginfo(_vmcoreinfo(gen)))
    assert (lay.desc_size, lay.state_var, lay.text_begin, lay.text_next) == (24, Field(0, 8), Field(8, 8),
                                                                             Field(16, 8))
    assert (lay.seq, lay.ts_nsec, lay.text_len, lay.facility) == (Field(0, 8), Field(8, 8), Field(16, 2),
                                                                   Field(18, 1))
    assert lay.level == Field(19, 1, 5, 3) and lay.caller_id == Field(20, 4) and lay.info_size == 88


def test_read_ring_decodes_records_through_a_reader():
    vi = _vmcoreinfo("6.1")
    di = VmcoreinfoDebuginfo(vi)
    lay = prb_layout(di)
    rb_size = di.sizeof("struct printk_ringbuffer")
    count_bits, text_bits = 2, 8
    descs, infos, text = bytearray(24 * 4), bytearray(88 * 4), bytearray(1 << text_bits)
    pos = 0
    for did, msg in enumerate([b"first", b"Kernel panic - not syncing: test"]):
        blk = 8 + len(msg)
        text[pos:pos + 8] = struct.pack("<Q", did)
        text[pos + 8:pos + blk] = msg
        struct.pack_into("<QQQ", descs, 24 * did, (2 << 62) | did, pos, pos + blk)
        struct.pack_into("<QQH", infos, 88 * did, did, 1000 * did, len(msg))
        infos[88 * did + 19] = 0 << 5 | 3  # level 0 (flags 3)
        pos += (blk + 7) & ~7
    base = {"rb": 0x1000, "descs": 0x2000, "infos": 0x3000, "text": 0x4000}
    rb = bytearray(rb_size)

    def put(path: str, value: int) -> None:
        f = di.member("struct printk_ringbuffer", path)
        rb[f.offset:f.offset + f.size] = value.to_bytes(f.size, "little")

    put("desc_ring.count_bits", count_bits)
    put("desc_ring.descs", base["descs"])
    put("desc_ring.infos", base["infos"])
    put("desc_ring.head_id.counter", 1)
    put("desc_ring.tail_id.counter", 0)
    put("text_data_ring.size_bits", text_bits)
    put("text_data_ring.data", base["text"])
    memory = {base["rb"]: bytes(rb), base["descs"]: bytes(descs), base["infos"]: bytes(infos),
              base["text"]: bytes(text)}
    recs = read_ring(lambda a, n: memory[a][:n], base["rb"], di)
    assert [(r.seq, r.text, r.level, r.timestamp_ns) for r in recs] == [
        (0, "first", 0, 0), (1, "Kernel panic - not syncing: test", 0, 1000)]
    assert lay.level.get(bytes(infos), 88) == 0


def test_taint_letters_as_print_tainted_shows_them():
    assert taint_letters(0) == ""
    assert taint_letters((1 << 12) | (1 << 13)) == "GOE"  # TAINT_OOT_MODULE, TAINT_UNSIGNED_MODULE
    assert taint_letters(1 | (1 << 9)) == "PW"
    assert taint_letters(1 << 40) == "G?"


def _recorded(name: str) -> tuple[list[str], list[FrameRecord]]:
    doc = json.loads((FIXTURES / "postmortem" / f"{name}.json").read_text())
    return doc["log"], [FrameRecord(i, 0, f["function"], file=f["file"], inline=f["inline"], module=f["module"])
                        for i, f in enumerate(doc["frames"])]


def test_log_stack_is_the_crashing_tasks_trace():
    lines, _ = _recorded("oops")  # kdump straight from the oops: RIP line, then the Call Trace
    st = log_stack(lines)
    # pde_write, inlined into proc_reg_write, is a frame of drgn's (DWARF) but not of the kernel's trace
    assert [f.function for f in st.frames[:3]] == ["kdebug_trigger_oops", "kdebug_trigger_write", "proc_reg_write"]
    assert st.frames[0].module == "kdebug_trigger" and (st.pid, st.comm) == (104, "sh") and st.cpu == 1
    lines, _ = _recorded("sysrq")  # the stack panic() dumps after its line
    st = log_stack(lines)
    assert [f.function for f in st.frames[:3]] == ["dump_stack_lvl", "panic", "sysrq_handle_crash"]
    assert (st.pid, st.comm, st.cpu) == (106, "sh", 1)
    assert log_stack(["no trace here"]).frames == []


# The full report's signature (drgn's backtrace) against tier 0's (the log's
# Call Trace), per recorded dump: equal on every one, OOM included (its
# culprit skips the allocation path by function name, kdebug.report.guilt.OOM_PATH,
# which both stacks carry; source files are only in drgn's).
@pytest.mark.parametrize("name", ["sysrq", "nmi", "oops", "bug", "warn", "hung-task", "softlockup", "oom"])
def test_tier0_signature_equals_the_full_reports(name):
    lines, frames = _recorded(name)
    msg = panic_message(lines)
    reason = classify(msg, lines)
    full = signature(reason, msg, lines, frames)
    assert signature(reason, msg, lines, log_stack(lines).frames) == full
    # where the kernel printed no report the frames decide it (so this can fail);
    # elsewhere the title is the report's own
    assert (full != signature(reason, msg, lines, [])) == (name in ("sysrq", "nmi", "oom"))


def test_oom_culprit_is_the_caller_on_both_generations():
    # 6.1's recorded OOM: drgn's frames carry inlined allocator frames the
    # kernel's trace does not (__alloc_pages_may_oom, alloc_page_vma,
    # clear_user); neither decides it.
    lines, frames = _recorded("oom")
    assert signature("oom", panic_message(lines), lines, frames) == "out of memory in read_zero"
    # 6.12 prints v6.10's allocation-profiling names and rep_stos_alternative
    # (as in tests/fixtures/splats/6.12's traces).
    trace = ["dump_stack_lvl", "panic", "out_of_memory.cold", "__alloc_pages_slowpath.constprop.0",
             "__alloc_pages_noprof", "alloc_pages_mpol_noprof", "vma_alloc_folio_noprof", "do_anonymous_page",
             "__handle_mm_fault", "handle_mm_fault", "do_user_addr_fault", "exc_page_fault",
             "asm_exc_page_fault", "rep_stos_alternative", "read_zero", "vfs_read"]
    assert culprit("oom", [], [FrameRecord(i, 0, n) for i, n in enumerate(trace)]) == "read_zero"
    slab = ["panic", "out_of_memory", "__alloc_pages", "allocate_slab", "___slab_alloc", "__kmalloc_node",
            "kvmalloc_node", "mydrv_probe", "pci_device_probe"]
    assert culprit("oom", [], [FrameRecord(i, 0, n) for i, n in enumerate(slab)]) == "mydrv_probe"


def test_splat_corpus_signatures_do_not_need_frames():
    """Every recorded splat is titled by its own report: no frames, same title."""
    logs = sorted((FIXTURES / "splats").glob("*/*.log"))
    assert len(logs) >= 30
    for p in logs:
        lines = p.read_text().splitlines()
        msg = panic_message(lines)
        reason = classify(msg, lines)
        assert signature(reason, msg, lines, log_stack(lines).frames) == signature(reason, msg, lines, []), p


def test_fix_line_names_package_and_debuginfod():
    info = VmcoreInfo(None, "kdump", 0, {"BUILD-ID": "ab12", "OSRELEASE": "6.1.0-57-cloud-amd64"})
    assert debug_package("6.1.0-57-cloud-amd64") == "linux-image-6.1.0-57-cloud-amd64-dbg"
    line = fix_line(info, "linux-image-6.1.0-57-cloud-amd64-dbg", "")
    assert "install linux-image-6.1.0-57-cloud-amd64-dbg" in line and "build-id ab12" in line
    assert "http://d:8002/buildid/ab12/debuginfo" in fix_line(info, "p", "http://d:8002/")
    old = VmcoreInfo(None, "kdump", 0, {"OSRELEASE": "5.4.0"})
    assert "names no build-id" in fix_line(old, "linux-image-5.4.0-dbg", "")
    full = CacheError("kdebug's cache /c/debuginfo is full (No space left on device)",
                      hint="free space there, or point KDEBUG_CACHE at a larger disk")
    line = fix_line(info, "linux-image-6.1.0-57-cloud-amd64-dbg", "http://d:8002", full)
    assert line.startswith("the download failed: kdebug's cache /c/debuginfo is full (No space left on device); "
                           "free space there, or point KDEBUG_CACHE at a larger disk and run again")
    assert line.endswith("or install linux-image-6.1.0-57-cloud-amd64-dbg or pass --vmlinux")


def _tier0_report(sig="BUG: kernel NULL pointer dereference in kdebug_trigger_oops") -> Report:
    nd = NoDebugInfo("TIER 0, no debug info for 6.1.0-57-cloud-amd64 (build-id ab12): no tasks",
                     "install linux-image-6.1.0-57-cloud-amd64-dbg", "linux-image-6.1.0-57-cloud-amd64-dbg",
                     "build-id ab12", "kallsyms", "the Call Trace the kernel printed in its log", "93 sh",
                     FrameRecord(0, 0xffffffff81000010, "iowrite8", 0x10, 0x60))
    return Report(sig, SystemInfo("6.1.0-57-cloud-amd64", build_id="ab12", crash_time="2026-12-07T15:03:07+00:00",
                                  vmcore="/var/crash/vmcore", vmcore_format="kdump"),
                  PanicInfo("BUG: kernel NULL pointer dereference", "null-deref", 1, None,
                            [FrameRecord(0, 0, "kdebug_trigger_oops", 5, 0x20, "kdebug_trigger")]),
                  tier=0, nodebug=nd)


def test_tier0_report_schema_round_trip_and_renderers():
    jsonschema = pytest.importorskip("jsonschema")
    r = _tier0_report()
    doc = json.loads(render(r, "json"))
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert doc["schema_version"] == REPORT_SCHEMA and doc["tier"] == 0
    assert doc["nodebug"]["pc"]["function"] == "iowrite8"
    assert report_from_dict(doc) == r
    old = {k: v for k, v in doc.items() if k not in ("tier", "nodebug")} | {"schema_version": "1.5"}
    assert report_from_dict(old).tier == 1  # a 1.5 report had debug info
    text = render(r, "text").splitlines()
    assert text[1].startswith("TIER 0, no debug info") and "install linux-image-6.1.0-57-cloud-amd64-dbg" in text[1]
    assert sum("TIER 0" in line for line in text) == 1  # said once, at the top
    assert any("iowrite8+0x10/0x60 (kallsyms)" in line for line in text)
    assert "TIER 0" in render(r, "md") and 'id="tier-notice"' in render(r, "html")
    # the log's frames have no address: none is printed (not 0x0000000000000000)
    assert "#0  kdebug_trigger_oops+0x5/0x20 [kdebug_trigger]" in text
    assert not any("0x0000000000000000" in line for line in text)


def test_frame_pc_shown_when_known():
    assert format_frame(FrameRecord(0, 0, "read_zero", 0x5d, 0x110)) == "#0  read_zero+0x5d/0x110"
    assert format_frame(FrameRecord(1, 0xffffffff81a0001d, "read_zero", 0x5d, 0x110)) == \
        "#1  0xffffffff81a0001d read_zero+0x5d/0x110"
    assert format_frame(FrameRecord(0, 0, "")) == "#0  0x0000000000000000 ??"  # a call through NULL


def _row(report: Report, h: str, when: str):
    return row_of(TriageEntry(DumpSite(f"/var/crash/{h}/vmcore", "file"), 1.0, report=report), f"fp1:{h}",
                  "local@test", now=__import__("datetime").datetime.fromisoformat(when))


def test_db_migrates_schema_1_and_upgrades_tier0_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)  # a database as schema 1 wrote it, with one row
    conn.executescript("""
        CREATE TABLE kdebug_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO kdebug_meta VALUES ('schema_version', '1');
        CREATE TABLE dumps (content_hash TEXT PRIMARY KEY, path TEXT NOT NULL, host TEXT NOT NULL,
            release TEXT NOT NULL, signature TEXT NOT NULL, reason TEXT NOT NULL, crash_time TEXT,
            analysed_at TEXT NOT NULL, analysed_by TEXT NOT NULL, seconds DOUBLE PRECISION NOT NULL,
            report_json TEXT NOT NULL);
        INSERT INTO dumps VALUES ('fp1:old', '/x', 'h', 'r', 'sig', 'oops', NULL, '2026-01-01T00:00:00+00:00',
            'local@x', 1.0, '{}');
    """)
    conn.commit()
    conn.close()
    t0 = _tier0_report()
    with open_db(path) as db:
        assert [(r.content_hash, r.tier) for r in db.rows()] == [("fp1:old", 1)]
        assert db.record([_row(t0, "new", "2026-12-07T16:00:00+00:00")]) == 1
        assert db.known(["fp1:new"])["fp1:new"].tier == 0
        full = _tier0_report("BUG: kernel NULL pointer dereference in kdebug_trigger_oops")
        full.tier, full.nodebug = 1, None
        up = _row(full, "new", "2026-12-08T09:00:00+00:00")
        assert db.upgrade([up]) == 1 and db.upgrade([up]) == 0  # a full report is never replaced
        row = db.known(["fp1:new"])["fp1:new"]
        assert row.tier == 1 and row.report().tier == 1
        assert row.analysed_at == "2026-12-07T16:00:00+00:00" and row.path == "/var/crash/new/vmcore"
        (g,) = [g for g in summarize(db.rows()) if g.signature == full.signature]
        assert g.first_seen == g.last_seen == "2026-12-07T15:03:07+00:00"  # the crash's time, kept
    assert sqlite3.connect(path).execute("SELECT value FROM kdebug_meta").fetchone() == (str(SCHEMA_VERSION),)


# A kernel without CONFIG_KALLSYMS (or before v6.0, whose VMCOREINFO names no
# kallsyms tables): drgn's loader raises MissingDebugInfoError, which the
# report takes as "no symbols" (it crashed kdebug before). The program is a
# fake (no dump file); what it says comes from NoDebugProgram.facts itself.
class _NoKallsyms(NoDebugProgram):
    MESSAGE = ("The symbols: kallsyms_names, kallsyms_token_table, kallsyms_token_index, and "
               "kallsyms_num_syms were not found in VMCOREINFO.")
    records: list[PrintkRecord] = []

    def __init__(self, path, vmcoreinfo):
        self.di = VmcoreinfoDebuginfo(vmcoreinfo)
        try:
            raise drgn.MissingDebugInfoError(self.MESSAGE)  # what load_vmlinux_kallsyms raises there
        except READ_ERRORS as e:
            self.kallsyms, self.kallsyms_error = False, str(e)

    def read(self, address: int, size: int) -> bytes:
        raise drgn.FaultError("not in this fake dump", address)

    def _log(self) -> list[PrintkRecord]:
        return self.records  # the ring's decoding is test_read_ring_decodes_records_through_a_reader's


def test_a_dump_without_kallsyms_gets_the_log_only_report(monkeypatch, tmp_path):
    vmci = {k: v for k, v in _vmcoreinfo("6.1").items() if "kallsyms" not in k}
    assert len(vmci) < len(_vmcoreinfo("6.1"))  # the fixture had them
    lines, frames = _recorded("oops")
    monkeypatch.setattr(_NoKallsyms, "records", [PrintkRecord(i, 1000 * i, 4, t) for i, t in enumerate(lines)])
    monkeypatch.setattr(tier0, "NoDebugProgram", _NoKallsyms)
    dump = tmp_path / "vmcore"  # not there: the registers' notes are unreadable too
    r = tier0.tier0_report(DumpSite(dump, "file"), VmcoreInfo(dump, "kdump", 0, vmci), dump)
    msg = panic_message(lines)
    assert r.tier == 0 and r.signature == signature(classify(msg, lines), msg, lines, frames)
    assert r.signature == "BUG: kernel NULL pointer dereference in kdebug_trigger_oops"
    assert (r.nodebug.symbols, r.nodebug.pc, r.nodebug.task) == ("none", None, "104 sh")
    assert [f.function for f in r.panic.backtrace[:2]] == ["kdebug_trigger_oops", "kdebug_trigger_write"]
    assert (r.system.taint, r.system.cpus, r.system.memory_kb) == ("GOE", 0, 0)  # taint from the oops header
    assert r.system.release == vmci["OSRELEASE"] and r.system.build_id == vmci["BUILD-ID"]
    assert any(w.startswith("tier 0: kallsyms: not in this dump (The symbols: kallsyms_names") for w in r.warnings)
    text = render(r, "text")
    assert "saved RIP  -" in text and "#0  kdebug_trigger_oops+" in text
