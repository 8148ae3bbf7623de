"""The warm-start key and record checks (kdebug.warm.key, pure)."""

import dataclasses
from pathlib import Path

from kdebug.plan.plan import Drive, LaunchPlan, SerialPort
from kdebug.warm.key import StateRecord, changed_image, fingerprint, refusal, start_line

PLAN = LaunchPlan(name="kdebug-a", image=Path("/boot/vmlinuz"), initrd=Path("/c/a.img"),
                  cmdline="console=ttyS0 crashkernel=128M", gdb_port=1111,
                  qmp_socket=Path("/run/a/qmp.sock"), console_log=Path("/run/a/console.log"),
                  serial_ports=(SerialPort("org.kdebug.dump", Path("/out/a/.vmcore.stream")),))
DIGESTS = {"/boot/vmlinuz": "k" * 64, "/c/a.img": "i" * 64}


def key(plan=PLAN, digests=DIGESTS, qemu="/usr/bin/qemu:1:2", stage="ready"):
    return fingerprint(plan, digests, qemu, stage).key()


def test_key_ignores_the_runs_own_paths_and_ports():
    other = dataclasses.replace(PLAN, name="kdebug-b", gdb_port=2222, qmp_socket=Path("/run/b/q"),
                                console_log=Path("/run/b/c"),
                                serial_ports=(SerialPort("org.kdebug.dump", Path("/out/b/s")),))
    assert key(other) == key()
    # the initramfs and image by content: the same bytes under another path are the same guest
    moved = dataclasses.replace(PLAN, initrd=Path("/elsewhere.img"))
    assert key(moved, {**DIGESTS, "/elsewhere.img": "i" * 64}) == key()


def test_key_changes_with_what_the_guest_is():
    base = key()
    changes = [
        key(digests={**DIGESTS, "/boot/vmlinuz": "x" * 64}),  # rebuilt kernel
        key(digests={**DIGESTS, "/c/a.img": "x" * 64}),  # other /init or files
        key(dataclasses.replace(PLAN, cmdline="console=ttyS0")),
        key(dataclasses.replace(PLAN, memory_mb=2048)),
        key(dataclasses.replace(PLAN, cpus=1)),
        key(dataclasses.replace(PLAN, machine="q35")),
        key(dataclasses.replace(PLAN, pvpanic=True)),
        key(dataclasses.replace(PLAN, gdb_port=None)),
        key(dataclasses.replace(PLAN, drives=(Drive(Path("/d"), "disk0"),))),
        key(dataclasses.replace(PLAN, serial_ports=())),
        key(qemu="/usr/bin/qemu:1:3"),
        key(stage="armed kexec -p ..."),
    ]
    assert base not in changes and len(set(changes)) == len(changes)


def _rec(**kw):
    fp = fingerprint(PLAN, DIGESTS, "/usr/bin/qemu:1:2", "ready")
    base = dict(key=fp.key(), saved=1_800_000_000.0, stage="ready", qemu=fp.qemu, qemu_version="QEMU 10.0.2",
                machine="pc", image="/boot/vmlinuz", image_digest=fp.image, release="6.1", state_bytes=1000)
    return fp, StateRecord(**{**base, **kw})


def test_refusals_one_line_each():
    fp, rec = _rec()
    assert refusal(rec, fp, "QEMU 10.0.2", 1000) is None
    assert "missing" in refusal(rec, fp, "QEMU 10.0.2", None)
    assert "truncated" in refusal(rec, fp, "QEMU 10.0.2", 999)
    assert "QEMU 9.2.0" in refusal(dataclasses.replace(rec, qemu_version="QEMU 9.2.0"), fp, "QEMU 10.0.2", 1000)
    assert "machine type q35" in refusal(dataclasses.replace(rec, machine="q35"), fp, "QEMU 10.0.2", 1000)
    assert "changed" in refusal(dataclasses.replace(rec, image_digest="z"), fp, "QEMU 10.0.2", 1000)
    for why in (refusal(rec, fp, "QEMU 10.0.2", 999),):
        assert "\n" not in why


def test_a_rebuilt_image_is_named():
    _, rec = _rec()
    assert changed_image([rec], "/boot/vmlinuz", "new", "ready") is rec
    assert changed_image([rec], "/boot/vmlinuz", rec.image_digest, "ready") is None
    assert changed_image([rec], "/other", "new", "ready") is None


def test_record_round_trip_and_start_line():
    _, rec = _rec(kaslr_offset=0x1e000000)
    again = StateRecord.from_dict({**rec.to_dict(), "from_the_future": 1})
    assert again == rec
    assert start_line(rec).startswith(f"warm (state {rec.key}, saved 20")


