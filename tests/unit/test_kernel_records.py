"""Kernel records printed into a command's output on the serial console
(kdebug.guest.console: cuttable markers, kernel_free): the 8250 console writes
a record whole, anywhere, even inside a marker."""

from __future__ import annotations

import re

from kdebug.guest.console import cuttable, kernel_free

REC = "[    2.990000] flood line 1\r\n"


def test_markers_match_with_records_inside_them():
    end = re.compile(cuttable("__KD_E_7x1_" + r"(\d+)" + "__"))
    for text, status in [("__KD_E_7x1_0__", "0"), (f"__KD_{REC}E_7x1_1{REC}{REC}27__", "127"),
                         (f"__KD_E_7x1_{REC}42__", "42")]:
        m = end.search(text)
        assert m and kernel_free(m.group(1)) == status, text
    assert not end.search("__KD_E_7x1_x__") and not end.search("__KD_E_7x2_0__")


def test_output_loses_the_records_only():
    out = f"own 1\r\nown{REC} 2\r\n[   10.5] not a record\r\n{REC}"
    assert kernel_free(out) == "own 1\r\nown 2\r\n[   10.5] not a record\r\n"
