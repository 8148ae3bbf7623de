"""Kernel records printed into what the guest's shell prints on the serial
console (kdebug.guest.console): the 8250 console writes a record whole,
anywhere, even inside a marker or a line of a command's escaped output."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from kdebug.guest.console import ESCAPE_OUTPUT, command_output, cuttable, kernel_free, printed_marker

REC = "[    2.990000] flood line 1\r\n"
CALLER = "[    3.000001][    T1] a record with its caller\r\n"


def test_markers_match_with_records_inside_them():
    end = re.compile(cuttable("__KD_E_7x1_" + r"(\d+)" + "__"))
    for text, status in [("__KD_E_7x1_0__", "0"), (f"__KD_{REC}E_7x1_1{REC}{CALLER}27__", "127"),
                         (f"__KD_E_7x1_{REC}42__", "42")]:
        m = end.search(text)
        assert m and kernel_free(m.group(1)) == status, text
    assert not end.search("__KD_E_7x1_x__") and not end.search("__KD_E_7x2_0__")


def test_the_begin_marker_as_printed_not_as_echoed():
    begin = re.compile(printed_marker("__KD_B_9x1__"))
    # a boot under load: the first command's echo, cut by its stty -echo, runs into the marker
    cut = ("/ # stty -echo cols 1000 2>/dev/null; export TERM=dumb PS1='' PS2=''\r\r\n"
           "o \"<0>x\" > /dev/kmsg; done) & exit 3\r\r\n) </dev/null >/tmp/.kdebug-out.9x1 2>&1; "
           "sed -e 's/\\[/\\\\(/__KD_B_9x1__\r\r\nown line 1\r\r\n")
    m = begin.search(cut)
    assert m and cut[m.end():].startswith("own line 1")
    for printed in (f"__KD_B{REC}_9x1__\r\n", f"__KD_B_9x1__{REC}{CALLER}\r\n", f"__KD_B_9x1__\r{REC}\n"):
        m = begin.search(printed + "own")
        assert m and (printed + "own")[m.end():] == "own", printed
    for echoed in ("echo __KD_B_9x1__; ( true\r\n", "echo __KD_B_9x1__\r\r\n; ( true"):
        assert not begin.search(echoed), echoed


def test_markers_lose_the_records_only():
    out = f"own 1\r\nown{REC} 2\r\n[   10.5] not a record\r\n{CALLER}"
    assert kernel_free(out) == "own 1\r\nown 2\r\n[   10.5] not a record\r\n"


def _escaped(raw: bytes) -> str:
    """What the guest's shell prints for ``raw``: ESCAPE_OUTPUT run by a real
    sed (busybox's, as in the guest, else the host's), then the tty's CRs."""
    sed = shutil.which("busybox")
    argv = ["sh", "-c", ESCAPE_OUTPUT if sed is None else f"busybox {ESCAPE_OUTPUT}"]
    if shutil.which("sh") is None:
        pytest.skip("no sh")
    out = subprocess.run(argv, input=raw, capture_output=True, check=True).stdout
    return out.decode().replace("\n", "\r\n")


@pytest.mark.parametrize("own", [
    "plain\n",
    "[    1.000000] a line of dmesg, shaped like a record\n[    1.5][  T9] x\n",
    "back\\slash \\( and \\\\[ and [ at the end [\n",
    "no newline at the end",
    "",
    "\n\n[\n",
])
def test_a_commands_output_is_its_own_with_records_anywhere(own):
    """Records cut in at every position of the escaped output: the output
    comes back byte for byte, with no record left and no line of its own lost."""
    printed = _escaped(own.encode())
    assert "[" not in printed
    assert command_output(printed) == own
    for i in range(len(printed) + 1):
        for rec in (REC, CALLER):
            assert command_output(printed[:i] + rec + printed[i:]) == own, (i, rec)
    assert command_output(REC.join(printed) + REC) == own
