"""Where dumps are found (kdebug.vmcore.layouts, pure): the three layouts
machines leave, loose dump files, and the saved log's parser. The files
here carry only a dump's first bytes; tests/vmcore lays out real dumps."""

from __future__ import annotations

import struct

import pytest

from kdebug.errors import UsageError, VmcoreError
from kdebug.vmcore.layouts import find_dumps, locate, looks_like_dump, parse_saved_dmesg

ELF_CORE = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<H", 4) + b"\0" * 46
ELF_EXEC = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<H", 2) + b"\0" * 46
KDUMP = b"KDUMP   " + b"\0" * 56


def _put(path, data=KDUMP):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _found(root):
    return [(str(s.vmcore.relative_to(root)), s.layout, s.dmesg.name if s.dmesg else None, bool(s.incomplete))
            for s in find_dumps(root)]


def test_the_three_layouts_at_any_depth(tmp_path):
    crash = tmp_path / "host1" / "var" / "crash"
    _put(crash / "202612020623" / "dump.202612020623")
    _put(crash / "202612020623" / "dmesg.202612020623", "[    0.000000] Linux version 6.1.0\n")
    _put(crash / "202612021001" / "dump-incomplete")  # kdump-tools was cut short
    _put(crash / "202612021001" / "dmesg.202612021001", "[    0.000000] x\n")
    _put(crash / "kexec_cmd", "kexec -p ...")  # kdump-tools leaves this beside the stamps
    _put(crash / "127.0.0.1-2026-12-02-06:23:00" / "vmcore", ELF_CORE)
    _put(crash / "127.0.0.1-2026-12-02-06:23:00" / "vmcore-dmesg.txt", "[    0.000000] x\n")
    _put(crash / "127.0.0.1-2026-12-03-07:00:00" / "vmcore-incomplete", ELF_CORE)
    cap = tmp_path / "kdebug-capture-1"
    _put(cap / "capture.json", "{}")
    _put(cap / "vmcore")
    _put(cap / "console.log", "vmcore written\n")
    failed = tmp_path / "kdebug-capture-2"  # a failed capture: only what arrived
    _put(failed / "capture.json", "{}")
    _put(failed / "vmcore.partial")
    assert _found(tmp_path) == [
        ("host1/var/crash/127.0.0.1-2026-12-02-06:23:00/vmcore", "rhel-kdump", "vmcore-dmesg.txt", False),
        ("host1/var/crash/127.0.0.1-2026-12-03-07:00:00/vmcore-incomplete", "rhel-kdump", None, True),
        ("host1/var/crash/202612020623/dump.202612020623", "kdump-tools", "dmesg.202612020623", False),
        ("host1/var/crash/202612021001/dump-incomplete", "kdump-tools", "dmesg.202612021001", True),
        ("kdebug-capture-1/vmcore", "kdebug", None, False),
    ]


def test_loose_files_by_their_first_bytes_or_name(tmp_path):
    _put(tmp_path / "a" / "core-of-box7", ELF_CORE)
    _put(tmp_path / "a" / "vmlinux", ELF_EXEC)  # an ELF, but not a core
    _put(tmp_path / "b" / "flat.bin", b"makedumpfile" + b"\0" * 20)
    _put(tmp_path / "b" / "old.vmcore", b"")  # named as one: listed, so its error is heard
    _put(tmp_path / "b" / "vmcore-notes.txt", "text")
    assert [(p, layout) for p, layout, _, _ in _found(tmp_path)] == [
        ("a/core-of-box7", "file"), ("b/flat.bin", "file"), ("b/old.vmcore", "file")]
    assert looks_like_dump(tmp_path / "a" / "core-of-box7") and not looks_like_dump(tmp_path / "a" / "vmlinux")


def test_symlinks_followed_once_and_loops_end(tmp_path):
    real = _put(tmp_path / "elsewhere" / "202601010000" / "dump.202601010000")
    root = tmp_path / "crash"
    own = _put(root / "box" / "vmcore", ELF_CORE)
    (root / "linked").symlink_to(real.parent, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "b.vmcore").symlink_to(real)  # a name for a dump kept elsewhere: listed
    (root / "dup.vmcore").symlink_to(own)  # found already by its real path: not twice
    assert [p for p, *_ in _found(root)] == ["b.vmcore", "box/vmcore", "linked/dump.202601010000"]


def test_nothing_found_and_bad_roots(tmp_path):
    assert find_dumps(tmp_path) == []
    with pytest.raises(VmcoreError, match="no dump in"):
        locate(tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        find_dumps(tmp_path / "nope")
    with pytest.raises(UsageError, match="is not a directory"):
        find_dumps(_put(tmp_path / "f"))


def test_locate_one_dump_or_refuse_many(tmp_path):
    d = _put(tmp_path / "202601010000" / "dump.202601010000")
    _put(tmp_path / "202601010000" / "dmesg.202601010000", "[    1.000000] x\n")
    by_file = locate(d)
    assert by_file.layout == "kdump-tools" and by_file.dmesg.name == "dmesg.202601010000"
    assert locate(tmp_path) == by_file
    _put(tmp_path / "other" / "vmcore", ELF_CORE)
    with pytest.raises(UsageError, match="holds 2 dumps.*kdebug triage"):
        locate(tmp_path)
    assert locate(tmp_path / "other" / "vmcore").layout == "file"


def test_saved_dmesg_formats():
    recs = parse_saved_dmesg(
        "[    0.000000] Linux version 6.1.0-57-cloud-amd64\n"
        "[   12.345678] Kernel panic - not syncing: sysrq triggered crash\n"
        "continued line of the record before\n"
        "<3>[   13.000001] with a level\n"
        "6,1234,14000002,-;from /dev/kmsg\n"
        "\n")
    assert [(r.seq, r.timestamp_ns, r.level, r.text) for r in recs] == [
        (0, 0, 4, "Linux version 6.1.0-57-cloud-amd64"),
        (1, 12_345_678_000, 4, "Kernel panic - not syncing: sysrq triggered crash\n"
                               "continued line of the record before"),
        (2, 13_000_001_000, 3, "with a level"),
        (1234, 14_000_002_000, 6, "from /dev/kmsg"),
    ]
    assert parse_saved_dmesg("no timestamps here\n") == []
