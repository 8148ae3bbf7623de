"""Fixtures of the vm tier."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _on_each_kernel(kernel_env):
    """Every test here runs once per kernel generation (tests/conftest.py)."""
