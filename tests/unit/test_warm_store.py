"""The saved-state store on disk (kdebug.warm.store): publish, lookup, prune."""

import os

import pytest

from kdebug.warm import store
from kdebug.warm.key import StateRecord


@pytest.fixture
def warm_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KDEBUG_WARM_DIR", str(tmp_path / "warm"))
    return tmp_path / "warm"


def _save(key: str, size: int, saved: float) -> store.Entry | None:
    tmp = store.new_dir(key)
    with open(tmp / store.STATE, "wb") as f:
        f.write(os.urandom(size))  # not sparse: it uses its size on disk
    rec = StateRecord(key=key, saved=saved, stage="ready", qemu="q", qemu_version="QEMU 10", machine="pc",
                      image="/boot/vmlinuz", image_digest="d", release="6.1", state_bytes=0)
    return store.publish(tmp, rec, "boot log\n")


def test_publish_lookup_and_a_second_saver_loses(warm_dir):
    e = _save("k1", 4096, 100.0)
    assert e is not None and e.record.state_bytes == 4096 and e.boot_log == "boot log\n"
    assert (e.state.stat().st_mode & 0o777) == 0o400  # QEMU only reads it
    assert store.lookup("k1").record == e.record
    assert _save("k1", 4096, 200.0) is None  # the same state saved meanwhile: ours is dropped
    assert [x.name for x in warm_dir.iterdir() if ".tmp-" in x.name] == []
    assert store.lookup("nope") is None


def test_prune_least_recently_used_past_the_cap(warm_dir):
    for i, k in enumerate(("old", "mid", "new")):
        _save(k, 1 << 20, 100.0 + i)
    store.lookup("old").touch()  # used last: kept
    gone = store.prune(cap=(2 << 20) + (64 << 10))
    assert [e.record.key for e in gone] == ["mid"]
    assert sorted(e.record.key for e in store.entries()) == ["new", "old"]
    assert [e.record.key for e in store.prune(cap=0, keep="new")] == ["old"]
    store.prune(cap=0)
    assert store.entries() == []


def test_a_dead_savers_leftovers_are_swept(warm_dir):
    d = store.root() / "k9.tmp-999999999"
    d.mkdir(parents=True)
    store.prune()
    assert not d.exists()


def test_file_digest_is_cached_by_stamp(tmp_path, warm_dir):
    f = tmp_path / "image"
    f.write_bytes(b"a" * 100)
    d1 = store.file_digest(f)
    assert d1 == store.file_digest(f)
    f.write_bytes(b"b" * 101)
    assert store.file_digest(f) != d1
