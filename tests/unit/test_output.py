"""kdebug's own output under write faults (kdebug/output.py, capture/outfaults.py):
a file is written whole or not at all, an existing one is never lost, each
fault is one line naming the place and the fix, a second command in the same
directory is refused."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from pathlib import Path

import pytest

from kdebug import output
from kdebug.capture import outfaults
from kdebug.capture.api import _finishing
from kdebug.capture.record import Capture
from kdebug.errors import EXIT_OUTPUT, CaptureError, OutputError, UsageError


def _failing_write(code: int, after: int = 0):
    calls = {"n": 0}
    real = os.write

    def write(fd, data):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(code, os.strerror(code))
        return real(fd, data[:4096])

    return write


def test_write_file_whole_and_private(tmp_path):
    p = output.write_file(tmp_path / "a.json", "x" * 100_000)
    assert p.read_text() == "x" * 100_000
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.json"]


@pytest.mark.parametrize("code,words", [
    (errno.ENOSPC, "no space left on"), (errno.EROFS, "is on a read-only file system"),
    (errno.EIO, "I/O error writing to"), (errno.EDQUOT, "disk quota exceeded on"),
])
def test_write_fault_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, code, words):
    old = tmp_path / "report.html"
    old.write_text("the previous report")
    monkeypatch.setattr(os, "write", _failing_write(code, after=2))
    with pytest.raises(OutputError) as ei:
        output.write_file(old, "y" * 50_000, what="the report")
    e = ei.value
    assert e.exit_status == EXIT_OUTPUT == 74 and e.errno == code
    assert str(e).startswith(f"{tmp_path} {words}" if words.startswith("is") else f"{words} {tmp_path}")
    assert "while writing the report" in str(e) and "\n" not in str(e)
    assert old.read_text() == "the previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_no_space_says_how_much_is_needed(tmp_path):
    e = output.output_error(errno.ENOSPC, tmp_path, what="the dump", need=1_074_000_000)
    assert str(e) == (f"no space left on {tmp_path} while writing the dump: it needs about 1074 MB "
                      "(free space or choose --out elsewhere)")
    cut = outfaults.dump_fault(errno.ENOSPC, tmp_path, written=8_388_608, removed=True)
    assert cut.message == (f"no space left on {tmp_path} while writing the dump: it needs more than the "
                           "8.4 MB that fit (the cut dump, 8.4 MB, was removed to free the space)")
    assert cut.exit_status == 74 and cut.diagnoses[0].code == "output-full"


def _statvfs(free_blocks: int, ro: bool = False):
    real = os.statvfs

    def fake(path):
        st = real(path)
        return os.statvfs_result((st.f_bsize, 4096, st.f_blocks, free_blocks, free_blocks, st.f_files,
                                  st.f_ffree, st.f_favail, os.ST_RDONLY if ro else 0, st.f_namemax))

    return fake


def test_stalled_fault_tells_full_read_only_removed_and_slow(tmp_path, monkeypatch):
    f = tmp_path / "s"
    f.write_bytes(b"x")
    ino = f.stat().st_ino
    monkeypatch.setattr(os, "statvfs", _statvfs(free_blocks=1 << 20))
    assert output.stalled_fault(tmp_path, f, ino) is None  # plenty of room: a slow writer
    monkeypatch.setattr(os, "statvfs", _statvfs(free_blocks=3))
    assert output.stalled_fault(tmp_path, f, ino) == errno.ENOSPC
    monkeypatch.setattr(os, "statvfs", _statvfs(free_blocks=1 << 20, ro=True))
    assert output.stalled_fault(tmp_path, f, ino) == errno.EROFS
    f.unlink()
    assert output.stalled_fault(tmp_path, f, ino) == errno.ENOENT
    assert output.stalled_fault(tmp_path / "gone", f, ino) == errno.ENOENT


def test_growth_watch_waits_for_a_stall(tmp_path, monkeypatch):
    f = tmp_path / "s"
    f.write_bytes(b"x" * 8192)
    monkeypatch.setattr(os, "statvfs", _statvfs(free_blocks=0))
    w = outfaults.GrowthWatch(f, tmp_path)
    assert w.fault() is None  # not still long enough yet
    w.moved -= outfaults.STALL
    assert w.fault() == errno.ENOSPC
    with open(f, "ab") as fh:
        fh.write(b"y" * 65536)
    assert w.fault() is None and w.size >= 65536  # it grew: the clock starts again


def test_check_writable_refuses_before_any_work(tmp_path, monkeypatch):
    output.check_writable(tmp_path, what="the capture")
    with pytest.raises(OutputError, match="was removed"):
        output.check_writable(tmp_path / "nope", what="the capture")
    monkeypatch.setattr(os, "statvfs", _statvfs(free_blocks=1 << 20, ro=True))
    with pytest.raises(OutputError, match="read-only file system"):
        output.check_writable(tmp_path, what="the capture")


def test_second_command_in_the_same_directory_is_refused(tmp_path):
    with (outfaults.claim_dir(tmp_path), pytest.raises(UsageError, match="in use by another kdebug command"),
          outfaults.claim_dir(tmp_path)):
        pass
    with outfaults.claim_dir(tmp_path):  # released
        pass
    assert list(tmp_path.iterdir()) == []  # no lock file left


def _cap(d: Path) -> Capture:
    return Capture(directory=d, method="kdump", requested_method="kdump", trigger="sysrq")


def test_a_capture_whose_record_does_not_fit_says_so(tmp_path, monkeypatch):
    cap = _cap(tmp_path)
    monkeypatch.setattr(os, "write", _failing_write(errno.ENOSPC))
    with pytest.raises(CaptureError) as ei, _finishing(cap):
        raise CaptureError("the dump was cut", stage="dump")
    assert "capture.json not written: no space left on" in str(ei.value)
    assert list(tmp_path.iterdir()) == []  # no empty .capture.json.tmp


def test_a_write_fault_in_a_stage_is_the_one_line(tmp_path, monkeypatch):
    (tmp_path / ".vmcore.stream").write_bytes(b"K" * 100)
    cap = _cap(tmp_path)
    with pytest.raises(CaptureError) as ei, _finishing(cap):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "vmcore.partial"))
    e = ei.value
    assert e.exit_status == 74 and e.diagnoses[0].code == "output-read-only"
    data = json.loads((tmp_path / "capture.json").read_text())
    assert data["ok"] is False and data["failed_stage"] == "output" and data["partial"] == "vmcore.partial"
    assert "read-only" in data["error"]["message"]


def test_success_without_a_record_is_an_output_error(tmp_path, monkeypatch):
    cap = _cap(tmp_path)
    cap.vmcore = "vmcore"
    monkeypatch.setattr(os, "write", _failing_write(errno.ENOSPC))
    t = time.monotonic()
    with pytest.raises(CaptureError, match="the dump is whole in .*/vmcore but has no record") as ei, \
            _finishing(cap):
        pass
    assert ei.value.exit_status == 74 and time.monotonic() - t < 1


def test_report_on_a_full_disk_keeps_the_previous_report(tmp_path, monkeypatch):
    from kdebug.cli.postmortem_cmd import _write

    report = tmp_path / "report.html"
    report.write_text("yesterday's report")
    monkeypatch.setattr(os, "write", _failing_write(errno.ENOSPC, after=1))
    with pytest.raises(OutputError) as ei:
        _write("<html>" + "x" * 20_000, report)
    assert str(ei.value).startswith(f"no space left on {tmp_path} while writing the report report.html")
    assert ei.value.exit_status == 74
    assert report.read_text() == "yesterday's report" and [p.name for p in tmp_path.iterdir()] == ["report.html"]
