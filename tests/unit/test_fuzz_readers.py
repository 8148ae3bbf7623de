"""Property-based fuzzing of every kdebug reader of untrusted bytes or text
(hypothesis, derandomized: the same inputs every CI run, seconds in all).

Seeds are real: the first 64 KiB of a kdump-compressed dump of each kernel
generation (tests/fixtures/fuzz/seeds), the same bytes wrapped as
makedumpfile's flattened stream and an ELF core built around their real
VMCOREINFO; crash's recorded output, the recorded console logs, a capture.json
and the regression corpus (tests/fixtures/fuzz/corpus: inputs that once
broke a reader). Each input is mutated by 1-16 byte changes and a cut.

The property: a reader gives a valid answer or one line of KdebugError (for
kdebug.elf, its FormatError: the callers translate it), never another
exception, within the 1 s deadline and 64 MB of Python allocations.
bench/fuzz.py runs the same properties for longer, and the end-to-end run
through `kdebug postmortem`.
"""

from __future__ import annotations

import json
import os
import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdebug import elf
from kdebug.capture.record import load_capture
from kdebug.crash import parse as crash_parse
from kdebug.decode.vmcoreinfo import VmcoreinfoDebuginfo
from kdebug.errors import KdebugError
from kdebug.report import logtext, taxonomy
from kdebug.vmcore import notes
from kdebug.vmcore.info import identify, parse_vmcoreinfo, read_dump
from kdebug.vmcore.layouts import DumpSite
from kdebug.vmcore.locate import find_module_files, recorded_kernel

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SEEDS = FIXTURES / "fuzz" / "seeds"
CORPUS = FIXTURES / "fuzz" / "corpus"
MEMORY = 64 << 20

#: bench/fuzz.py sets these for its long run; CI: 150 examples, the same every run.
EXAMPLES = int(os.environ.get("KDEBUG_FUZZ_EXAMPLES", "150"))
CI = settings(derandomize="KDEBUG_FUZZ_RANDOM" not in os.environ, max_examples=EXAMPLES, deadline=1000,
              database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def kdump_seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted(SEEDS.glob("kdump-*.head"))]


def flattened(data: bytes, piece: int = 4096) -> bytes:
    """``data`` as makedumpfile -F writes a file: a 4 KiB header, then
    (offset, size) records, then the end marker (makedumpfile.h)."""
    out = bytearray(b"makedumpfile".ljust(16, b"\0") + struct.pack(">qq", 1, 1)).ljust(4096, b"\0")
    for off in range(0, len(data), piece):
        chunk = data[off:off + piece]
        out += struct.pack(">qq", off, len(chunk)) + chunk
    return bytes(out + struct.pack(">qq", -1, -1))


def vmcoreinfo_of(seed: bytes) -> bytes:
    """The VMCOREINFO text a kdump seed carries (kdump_sub_header, version >= 3)."""
    (block,) = struct.unpack_from("<i", seed, 428)
    off, size = struct.unpack_from("<qQ", seed, block + 32)
    return seed[off:off + size] if off + size <= len(seed) else b"OSRELEASE=6.1.0\nPAGESIZE=4096\n"


def elf_core(vmcoreinfo: bytes, loads: int = 3) -> bytes:
    """An x86-64 ELF core as QEMU's dump-guest-memory lays it out: a PT_NOTE
    with VMCOREINFO, then PT_LOADs whose data follows."""
    def note(name: bytes, ntype: int, desc: bytes) -> bytes:
        pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
        return struct.pack("<III", len(name) + 1, len(desc), ntype) + pad(name + b"\0") + pad(desc)

    notes_ = note(b"CORE", 1, bytes(336)) + note(b"VMCOREINFO", 0, vmcoreinfo)
    phnum = 1 + loads
    data_at = 64 + 56 * phnum
    ph = struct.pack("<IIQQQQQQ", 4, 0, data_at, 0, 0, len(notes_), len(notes_), 0)
    at = data_at + len(notes_)
    for i in range(loads):
        ph += struct.pack("<IIQQQQQQ", 1, 7, at + i * 4096, 0xFFFF888000000000 + i * 4096, i * 4096, 4096, 4096, 0)
    eh = (elf.ELF_MAGIC + bytes([2, 1, 1]) + bytes(9)
          + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0, 64, 56, phnum, 0, 0, 0))
    return eh + ph + notes_ + bytes(4096 * loads)


def dump_seeds() -> list[bytes]:
    seeds = kdump_seeds()
    seeds += [flattened(s[:16384]) for s in seeds]
    seeds += [elf_core(vmcoreinfo_of(s)) for s in kdump_seeds()]
    seeds += [p.read_bytes() for p in sorted(CORPUS.glob("*.dump"))]
    return seeds


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed with 1-16 bytes changed, sometimes cut short."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 16))):
        # Most damage where the headers are; some anywhere.
        hi = min(len(data), draw(st.sampled_from([512, 4096, 8192, len(data)])))
        data[draw(st.integers(0, hi - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()) and draw(st.integers(0, 3)) == 0:
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


def bounded(fn, *args):
    """Call ``fn``: its answer, or the KdebugError it raised (one line),
    within MEMORY bytes of Python allocations."""
    tracemalloc.start()
    try:
        return fn(*args)
    except KdebugError as e:
        assert "\n" not in str(e) and str(e), repr(e)
        return e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY, f"{fn.__name__} allocated {peak} bytes"


@pytest.fixture(scope="module")
def dump_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "vmcore"

    def write(data: bytes) -> Path:
        path.write_bytes(data)
        return path

    return write


@CI
@given(data=mutated(dump_seeds()))
def test_dump_headers(dump_file, data):
    path = dump_file(data)
    info = bounded(read_dump, path)  # what the file holds never raises
    assert not isinstance(info, Exception), info
    assert info.format in ("elf", "kdump", "flattened", "unknown")
    assert info.complete or (info.problem and "\n" not in info.problem)
    got = bounded(identify, path)
    assert isinstance(got, KdebugError) or got.complete
    for fmt in ("elf", "kdump"):
        bounded(notes.note_bytes, path, fmt)


@CI
@given(data=mutated(dump_seeds()))
def test_elf_reader(data):
    read_at = elf.bytes_reader(data)
    try:
        hdr = elf.parse_elf_header(read_at)
        list(elf.elf_notes(read_at, hdr))
        elf.elf_build_id(read_at)
    except elf.FormatError:
        pass


def _texts(*globs: str) -> list[str]:
    return [p.read_text(errors="replace") for g in globs for p in sorted(FIXTURES.glob(g)) if p.is_file()]


@st.composite
def mutated_text(draw, seeds: list[str]) -> str:
    data = bytearray(draw(st.sampled_from(seeds)).encode())
    for _ in range(draw(st.integers(1, 16))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        data[at:at + 1] = draw(st.sampled_from([b"", b"\n", b"\0", b"=", b" ", b"(", b"]", b":", b"\xff",
                                                bytes([draw(st.integers(0, 255))])]))
    return data.decode(errors="replace")


VMCOREINFO_TEXTS = _texts("vmcoreinfo/*.txt") + [vmcoreinfo_of(s).decode("latin-1") for s in kdump_seeds()]


@CI
@given(text=mutated_text(VMCOREINFO_TEXTS))
def test_vmcoreinfo_text(text):
    info = bounded(parse_vmcoreinfo, text)
    di = VmcoreinfoDebuginfo(info)
    for call in (lambda: di.member("printk_info", "seq"), lambda: di.sizeof("printk_info"),
                 lambda: di.symbol("prb"), lambda: di.member("prb_desc", "text_blk_lpos.begin"),
                 lambda: di.enumerator("PG_slab")):
        try:
            bounded(call)
        except LookupError:
            pass  # "not in this dump's VMCOREINFO", the Debuginfo protocol's answer


CRASH_TEXTS = _texts("crash/*/*.txt")


@CI
@given(text=mutated_text(CRASH_TEXTS))
def test_crash_output_parsers(text):
    for parse in (crash_parse.parse_sys, crash_parse.parse_bt, crash_parse.parse_kdps, crash_parse.parse_mod,
                  crash_parse.parse_log, crash_parse.split_warnings):
        bounded(parse, text)
    for bt in crash_parse.parse_bt(text):
        bounded(crash_parse.call_chain, bt)
    bounded(crash_parse.sys_cpus, crash_parse.parse_sys(text))


CONSOLE_TEXTS = _texts("console/*.log", "capture/*.log", "splats/*/*", "crash/*/console.txt")


@settings(CI, max_examples=max(EXAMPLES // 4, 1))  # whole boot logs: the slowest target by far
@given(text=mutated_text(CONSOLE_TEXTS))
def test_console_log_parsers(text):
    lines = text.splitlines()
    bounded(taxonomy.find_reports, lines)
    bounded(taxonomy.culprit_report, lines)
    bounded(taxonomy.first_header, lines)
    bounded(logtext.call_trace, lines, 0, len(lines))
    bounded(logtext.span_pid, lines, 0, len(lines))
    for line in lines[:50]:
        bounded(taxonomy.reason_of_message, line)


CAPTURE_JSON = json.dumps({
    "schema": 1, "ok": True, "vmcore": "vmcore", "partial": None, "format": "kdump", "method": "kdump",
    "requested_method": "kdump", "trigger": "sysrq", "kernel": {"release": "6.1.0-57-cloud-amd64",
                                                                "vmlinux": "/usr/lib/debug/boot/vmlinux"},
    "stages": [{"name": "boot", "seconds": 2.5, "ok": True, "detail": ""}], "sizes": {"vmcore": 1},
    "modules": [{"name": "m", "guest": "/m.ko", "host": "/tmp/m.ko", "file": "modules/m.ko", "build_id": None}],
}, indent=2)


@CI
@given(text=mutated_text([CAPTURE_JSON]))
def test_capture_json_reader(tmp_path_factory, text):
    d = tmp_path_factory.mktemp("cap")
    (d / "capture.json").write_text(text)
    got = bounded(load_capture, d)
    assert isinstance(got, KdebugError) or got.directory == d
    (d / "vmcore").write_bytes(b"")
    site = DumpSite(d / "vmcore", "kdebug")
    bounded(find_module_files, site)  # the post-mortem's own reads of capture.json
    bounded(recorded_kernel, site, "00" * 20)


def test_corpus_inputs_stay_fixed(dump_file):
    """Each input that once broke a reader (tests/fixtures/fuzz/corpus)."""
    found = sorted(CORPUS.glob("*"))
    assert found, "the regression corpus is empty"
    for p in found:
        if p.suffix == ".dump":
            path = dump_file(p.read_bytes())
            assert not isinstance(bounded(read_dump, path), Exception)
            bounded(identify, path)
            for fmt in ("elf", "kdump"):
                bounded(notes.note_bytes, path, fmt)
        elif p.suffix == ".json":
            d = p.parent / f".{p.stem}.d"
            d.mkdir(exist_ok=True)
            try:
                (d / "capture.json").write_bytes(p.read_bytes())
                bounded(load_capture, d)
            finally:
                (d / "capture.json").unlink()
                d.rmdir()
