"""Two kdebug commands starting the same session name at once: the second
is refused in one line and the first's directory is left alone (it was
removed as stale while the first had not yet started QEMU)."""

from __future__ import annotations

import os
import time

import pytest

from kdebug import session
from kdebug.errors import UsageError


@pytest.fixture(autouse=True)
def _runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("KDEBUG_RUNTIME_DIR", str(tmp_path / "rt"))


def test_a_name_being_started_is_refused_and_kept():
    first = session.new_session("web")
    (first.dir / "console.log").write_text("booting")  # the first command's file, before session.json
    with pytest.raises(UsageError, match="session 'web' is being started by another kdebug command"):
        session.new_session("web")
    assert (first.dir / "console.log").read_text() == "booting"


def test_a_stale_start_is_taken_over():
    first = session.new_session("web")
    old = time.time() - session.STARTING - 1
    os.utime(first.dir, (old, old))
    again = session.new_session("web")  # the first kdebug died before starting QEMU
    assert again.dir == first.dir and again.dir.is_dir() and not any(again.dir.iterdir())
