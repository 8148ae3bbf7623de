"""The crash taxonomy on real captures: kdebug_splat.ko provokes each class
on the sanitizer tree (kdebug kernel build --preset sanitizers --fragment
modules) through `kdebug crash-loop --add ... --run 'insmod ...'`, which
captures the panic (QEMU dump) and reports it.

The truth is the kernel's own report on the console (its header, matched
with the kernel's format in tests/vm/splats.py), the function kdebug_splat.c
does the deed in, and what its C code does (an int read, a one-byte write).
One capture per class: each report ends its kernel. The classes the issue
lists run by default; KDEBUG_TEST_SPLATS=all runs every class the module
has (their console text is in tests/fixtures/splats/ for the unit tests)."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import ROOT, need_tool
from tests.vm.splats import CLASSES, expected_title, supported

#: use-after-free, out-of-bounds, an ABBA lock order, a shift overflow, a
#: refcount underflow, list corruption, sleeping while atomic.
DEFAULT = ("uaf", "oob", "abba", "shift", "refcount", "list", "atomic-sleep")
NAMES = tuple(CLASSES) if os.environ.get("KDEBUG_TEST_SPLATS") == "all" else DEFAULT


def _captured(cls, tmp_path, **where):
    from tests.vm.splats import crash_loop

    need_tool("qemu-system-x86_64")
    return crash_loop(cls, tmp_path / "cap", **where)


def _check(cls, console, report):
    title = expected_title(cls, console)  # the kernel printed its own report
    s = report.splat
    assert report.signature == title
    assert s is not None and s.kind == cls.kind and s.guilty == cls.function
    if cls.access is not None:
        assert s.access is not None and (s.access.op, s.access.size) == cls.access
    # the report the dump's log holds names the same header the console showed
    assert s.header in console


@pytest.mark.one_kernel  # boots the build tree, not a distro kernel
@pytest.mark.parametrize("name", NAMES)
def test_sanitizer_tree_class_is_captured_and_named(sanitizer_tree, name, tmp_path):
    from kdebug.kernel import find_kernel

    cls = supported(CLASSES[name], find_kernel(None, None, sanitizer_tree).config)
    assert cls is not None, f"the sanitizer tree lacks {CLASSES[name].needs}"
    console, report = _captured(cls, tmp_path, tree=sanitizer_tree)
    _check(cls, console, report)
    s = report.splat
    if cls.kind == "kasan":
        # the access, allocation and free stacks, resolved against the dump's
        # debug info: kdebug_splat_kmalloc allocates (kdebug_splat.c), the
        # allocator's own frames get their file and line from the vmlinux
        assert any(f.function == cls.function for f in s.stacks["access"])
        assert any(f.function == "kdebug_splat_kmalloc" for f in s.stacks["alloc"])
        if name != "oob":
            assert any(f.function == cls.function for f in s.stacks["free"])
        assert any(f.file.startswith("mm/") and f.line > 0 and f.pc for f in s.stacks["alloc"])
        assert s.access.address and f"{s.access.address:016x}" in console
        # every format carries them
        from kdebug.report.render import render

        doc = json.loads(render(report, "json"))
        assert doc["splat"]["stacks"]["alloc"] and doc["splat"]["access"]["op"] == cls.access[0]
        text = render(report, "text")
        assert "Allocated:" in text and "Freed:" in text if name != "oob" else "Allocated:" in text
        from tests.unit.test_postmortem_render import _jsonschema

        _jsonschema().validate(doc, json.loads((ROOT / "kdebug/report/schema/report-v1.json").read_text()))


def test_distro_kernel_list_corruption(kernel, tmp_path):
    """The same module on the Debian kernel of each generation (its list
    check moved to __list_del_entry_valid_or_report in 6.12, its oops header
    gained "Oops: "): list corruption, named alike."""
    cls = supported(CLASSES["list"], kernel.config)
    assert cls is not None, "the Debian kernels build DEBUG_LIST in"
    console, report = _captured(cls, tmp_path, release=kernel.release)
    _check(cls, console, report)
