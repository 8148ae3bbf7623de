"""Fixtures of the vm tier."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _on_each_kernel(kernel_env):
    """Every test here runs once per kernel generation (tests/conftest.py)."""


@pytest.fixture(scope="session")
def sanitizer_tree():
    """Tree B: the sanitizer kernel with its drivers as modules (setup builds it:
    kdebug kernel build --preset sanitizers --fragment modules)."""
    from kdebug.kbuild import DEFAULT_SOURCE, MODULES_FRAGMENTS, build_kernel, built_tree
    from tests.conftest import STRICT, need

    t = built_tree(fragments=MODULES_FRAGMENTS)
    if t is None:
        need(STRICT and DEFAULT_SOURCE.exists(), "the sanitizer tree is not built yet (scripts/setup.sh builds "
             "it: kdebug kernel build --preset sanitizers --fragment modules)")
        t = build_kernel(fragments=MODULES_FRAGMENTS).tree
    return t
