"""Which crash can read which kernel (kdebug.crash.support, pure): a kernel
change is recognised on the kernel (its vmlinux symbols) or in crash's own
words, a fix in the crash binary by a string only the fixed code carries."""

from __future__ import annotations

from kdebug.crash.support import CANNOT_OPEN, cannot_open, probe_symbols

#: What the vmlinux symbol tables of the two Debian generations hold of what the table asks.
DEBIAN_61 = {"module_load_offset", "kaslr_get_random_long"}
DEBIAN_612 = {"kaslr_get_random_long"}


def crash_802(marker: bytes) -> bool:
    return False  # /usr/bin/crash 8.0.2 carries none of the fixes' strings


def test_612_names_the_release_with_the_kaslr_fix():
    line = cannot_open("crash 8.0.2", DEBIAN_612, "", crash_802, 1)
    assert line.startswith("crash 8.0.2 cannot read this kernel: module_load_offset")
    assert "223b5e57d0d5" in line and "crash 8.0.6 reads it (crash 6752571d8d78)" in line
    assert "\n" not in line


def test_crash_own_words_name_the_module_change():
    console = ("\ncrash: invalid structure member offset: module_core_size\n"
               "       FILE: kernel.c  LINE: 3781  FUNCTION: module_init()\n")
    line = cannot_open("crash 8.0.2", DEBIAN_61, console, crash_802, 1)
    assert "ac3b43283923" in line and "crash 8.0.4 reads it (crash 7750e61fdb2a)" in line


def test_newest_needed_fix_is_named():
    console = "crash: invalid structure member offset: module_core_size\n"
    assert "crash 8.0.6" in cannot_open("crash 8.0.2", DEBIAN_612, console, crash_802, 1)


def test_a_crash_with_the_fix_is_not_sent_to_upgrade():
    has_kaslr_fix = lambda marker: marker == b"kaslr_get_random_long"  # noqa: E731
    line = cannot_open("crash 9.0.0", DEBIAN_612, "crash: vmlinux and vmcore do not match!\n", has_kaslr_fix, 1)
    assert line == "crash 9.0.0 cannot open this dump: crash: vmlinux and vmcore do not match!"


def test_unknown_cause_says_what_crash_did():
    line = cannot_open("crash 8.0.2", DEBIAN_61, "", crash_802, 1)
    assert line == "crash 8.0.2 cannot open this dump: it exits with status 1 before its first command, saying nothing"


def test_probe_symbols_cover_the_table():
    assert probe_symbols() == {"module_load_offset", "kaslr_get_random_long"}
    assert [c.release for c in CANNOT_OPEN] == sorted(c.release for c in CANNOT_OPEN)
