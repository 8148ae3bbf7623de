"""Golden files: what kdebug generates, compared byte for byte.

A missing or different golden file fails the test. To accept a deliberate
change, run the tests with KDEBUG_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden"


def check_golden(name: str, got: str, directory: Path = GOLDEN) -> None:
    path = directory / name
    if os.environ.get("KDEBUG_UPDATE_GOLDEN") == "1":
        path.write_text(got)
        return
    if not path.exists():
        pytest.fail(f"golden file {path} is missing (KDEBUG_UPDATE_GOLDEN=1 writes it; review the diff)")
    assert got == path.read_text(), f"{path} differs (KDEBUG_UPDATE_GOLDEN=1 rewrites it; review the diff)"
