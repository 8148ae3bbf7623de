"""Which crash kdebug runs on a dump (kdebug.crash.support.choose_crash, pure):
the one that can read the kernel, whatever the order it was found in; none,
said once, when none can. Binaries are described by the fix markers they
carry (as kdebug.crash.runner reads them), kernels by their probe symbols."""

from __future__ import annotations

from kdebug.crash.support import CANNOT_OPEN, PID_FLEX_ARRAY, CrashBinary, choose_crash

#: The markers each binary carries: bookworm's 8.0.2 none of them (measured:
#: its binary holds pid_numbers but not "pid.numbers"), 8.0.4 the v6.4 and v6.5
#: fixes, 9.0.2 every one.
CRASH_802 = CrashBinary("/usr/bin/crash", "crash 8.0.2", frozenset())
CRASH_804 = CrashBinary("/usr/local/bin/crash", "crash 8.0.4", frozenset({b"module_memory", b"pid.numbers"}))
CRASH_902 = CrashBinary("/cache/tools/crash-9.0.2/bin/crash", "crash 9.0.2",
                        frozenset({b"module_memory", b"pid.numbers", b"kaslr_get_random_long"}))

#: Probe symbols as the two kernel generations' vmlinux files answer them.
KERNEL_61 = {"module_load_offset", "kaslr_get_random_long"}
KERNEL_612 = {"kaslr_get_random_long"}  # module_load_offset gone in v6.10


def test_an_older_crash_found_first_loses_to_one_that_can_read_the_kernel():
    # A user's 8.0.2 first on PATH, kdebug's 9.0.2 found after it: 9.0.2 reads 6.12.
    c = choose_crash([CRASH_802, CRASH_902], KERNEL_612)
    assert c.binary is CRASH_902 and c.unsupported is None
    assert "crash 9.0.2 (/cache/tools/crash-9.0.2/bin/crash)" in c.reason
    assert "module_load_offset" in c.reason  # the change 8.0.2 does not follow


def test_on_61_the_crash_with_the_pid_fix_wins():
    # Debian's 6.1 has the v6.5 struct pid change backported: 8.0.2 opens the
    # dump but its ps misses tasks; both open it, the one with the fix is chosen.
    c = choose_crash([CRASH_802, CRASH_902], KERNEL_61)
    assert c.binary is CRASH_902 and PID_FLEX_ARRAY.change in c.reason


def test_equal_crashes_keep_the_order_found():
    c = choose_crash([CRASH_902, CrashBinary("/usr/local/bin/crash", "crash 9.0.3", CRASH_902.markers)], KERNEL_612)
    assert c.binary is CRASH_902 and "follows what the others do not" not in c.reason


def test_none_can_read_the_kernel_is_said_once_naming_the_fix():
    c = choose_crash([CRASH_802, CRASH_804], KERNEL_612)
    assert c.binary is None and c.unsupported == c.reason
    kaslr = CANNOT_OPEN[-1]
    assert c.reason == (f"no crash here can read this kernel ({kaslr.change}; crash 8.0.6 reads it "
                        f"(crash {kaslr.crash_commit})); tried crash 8.0.2 (/usr/bin/crash), "
                        "crash 8.0.4 (/usr/local/bin/crash)")


def test_unreadable_vmlinux_picks_the_most_capable_and_never_refuses():
    c = choose_crash([CRASH_802, CRASH_804], None)
    assert c.binary is CRASH_804 and c.unsupported is None
    assert choose_crash([CRASH_802], None).binary is CRASH_802


def test_no_crash_at_all():
    c = choose_crash([], KERNEL_612)
    assert c.binary is None and c.unsupported is None and "crash is not installed" in c.reason
