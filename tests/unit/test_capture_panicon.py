"""--panic-on, the splat watcher's reading of the console and the --run
diagnoses, on console text recorded from real runs (kdebug crash-loop with
tests/fixtures/oot/m.c; the logs start at kdebug's ready marker)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kdebug import elf
from kdebug.capture import diagnose as cd
from kdebug.capture import panicon
from kdebug.capture.steps import RUN_DONE, RUN_OUT_BEGIN, RUN_OUT_END, RUN_TYPED, run_output, run_script
from kdebug.errors import UsageError
from tests.unit.test_cli import one_line_error, run_kdebug

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "capture"


def test_panic_on_words():
    assert panicon.parse_panic_on(None) == ("oops",)
    assert panicon.parse_panic_on(["warn,hung", "oom"]) == ("oops", "warn", "hung", "oom")
    assert panicon.parse_panic_on("Lockup, warn") == ("oops", "lockup", "warn")
    assert panicon.parse_panic_on("none") == ()
    with pytest.raises(UsageError, match="unknown --panic-on word 'oopsie'"):
        panicon.parse_panic_on("warn,oopsie")
    with pytest.raises(UsageError, match="cannot be combined"):
        panicon.parse_panic_on("none,warn")


def test_settings_write_what_the_kernel_has():
    present = {"kernel.panic_on_oops", "kernel.panic_on_warn", "kernel.softlockup_panic"}
    writes, absent, impossible = panicon.settings(("oops", "lockup"), present)
    assert writes == {"kernel.panic_on_oops": "1", "kernel.softlockup_panic": "1"}
    assert absent == ["kernel.hardlockup_panic", "kernel.panic_on_rcu_stall"] and impossible == []
    assert panicon.settings(("oops", "oom"), present)[2] == ["oom"]
    # none: kdebug's own default (panic_on_oops) off, nothing else touched
    assert panicon.settings((), present) == ({"kernel.panic_on_oops": "0"}, [], [])


@pytest.mark.parametrize("word", ["bogus", "none,warn"])
@pytest.mark.parametrize("command", ["capture", "crash-loop"])
def test_bad_panic_on_is_one_line(command, word):
    msg = one_line_error(run_kdebug(command, "--panic-on", word))
    assert "--panic-on" in msg


def test_capture_and_crash_loop_share_the_capture_options():
    from kdebug.cli.capture_cmd import capture
    from kdebug.cli.crashloop_cmd import crash_loop

    def names(cmd):
        return {o for p in cmd.params for o in p.opts}

    shared = {"--run", "--add", "--module", "--setup", "--trigger", "--panic-on", "--panic-timeout",
              "--method", "--dump-level", "--compress", "--via", "--raw", "--timeout"}
    assert shared <= names(capture) and shared <= names(crash_loop)
    # one definition: the same help text on both
    helps = {c.name: {o: p.help for p in c.params for o in p.opts} for c in (capture, crash_loop)}
    assert all(helps["capture"][o] == helps["crash-loop"][o] for o in shared - {"--method"})


def test_oops_without_panic_is_found_with_the_word_that_captures_it():
    log = (FIX / "oops-panic-on-none.log").read_text()
    s = panicon.find_splat(log)
    assert s is not None and s.kind == "null-deref" and s.word == "oops"
    assert s.line == "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    d = cd.splat_without_panic(s, (), 3.0)
    assert d.code == "no-panic-after-splat"
    assert "kernel.panic_on_oops is off (--panic-on none)" in d.cause
    assert d.fix.startswith("--panic-on oops (kernel.panic_on_oops=1; boot: oops=panic)")


@pytest.mark.parametrize("text, kind, word", [
    ("[   22.1] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [sh:70]", "soft-lockup", "lockup"),
    ("[    9.2] BUG: KASAN: slab-use-after-free in kdebug_splat_uaf+0x5e/0x70", "kasan", "warn"),
    ("[    5.0] UBSAN: shift-out-of-bounds in drivers/x.c:12:8", "ubsan", "warn"),
    ("[    5.0] WARNING: CPU: 1 PID: 71 at lib/refcount.c:28 refcount_warn_saturate+0x", "warn", "warn"),
    ("[    5.0] WARNING: possible circular locking dependency detected", "lockdep", None),
    ("[    5.0] WARNING: suspicious RCU usage", "lockdep", None),
    ("[  130.0] INFO: task sh:70 blocked for more than 120 seconds.", "hung-task", "hung"),
    ("[    5.0] Out of memory: Killed process 71 (dd) total-vm:264kB", "oom-kill", "oom"),
    ("[    5.0] BUG: sleeping function called from invalid context at mm/slab.c:1", "atomic-sleep", None),
    ("[    5.0] kernel BUG at fs/x.c:12!", "bug", "oops"),
    # arch/x86/kernel/traps.c handle_stack_overflow, then die(): an oops
    ("[    4.8] BUG: TASK stack guard page was hit at (____ptrval____) (stack is (____ptrval____)..(____ptrval____))",
     "stack-overflow", "oops"),
    ("[    4.8] stack segment: 0000 [#1] PREEMPT SMP NOPTI", "oops", "oops"),
])
def test_splat_headers(text, kind, word):
    s = panicon.find_splat("noise\n" + text + "\n")
    assert (s.kind, s.word) == (kind, word)
    assert panicon.ANY_SPLAT.search(text)


def test_the_first_splat_wins():
    log = "x\nWARNING: CPU: 0 PID: 1 at a.c:1 f+0x0\nBUG: kernel NULL pointer dereference, address: 0\n"
    assert panicon.find_splat(log).kind == "warn"
    assert panicon.find_splat("kdebug-run: done status=0\n") is None


def test_warn_without_a_switch_set_says_what_would():
    s = panicon.Splat("kasan", "BUG: KASAN: slab-out-of-bounds in f+0x1/0x2", "warn")
    d = cd.splat_without_panic(s, ("oops",), 3.2)
    assert "kernel.panic_on_warn is off (--panic-on oops)" in d.cause
    assert "--panic-on warn" in d.fix
    none = cd.splat_without_panic(panicon.Splat("lockdep", "WARNING: possible ...", None), ("oops",), 3)
    assert "no kernel setting" in none.cause and "--method auto" in none.fix


def _status(log: str) -> int:
    return int(RUN_DONE.search(log).group(1))


def test_run_not_found():
    log = (FIX / "run-not-found.log").read_text()
    out = run_output(log)
    assert out.own == "/tmp/kdebug-run.sh: line 2: nosuchcmd: not found"
    d = cd.run_returned(_status(log), out, waited=0.5)
    assert d.code == "run-not-found" and "status 127" in d.cause and "nosuchcmd: not found" in d.cause


def test_run_that_exits_without_crashing():
    log = (FIX / "run-returned.log").read_text()
    assert run_output(log) == cd.RunOutput("hello")  # no prompt, no echo of what was typed, no marker
    d = cd.run_returned(_status(log), run_output(log), waited=3.0)
    assert d.code == "run-returned"
    assert d.cause == ("the --run command exited with status 0 and the kernel did not crash in the 3 s after; "
                       "its last output: hello")


def test_module_for_another_kernel_shows_insmods_error():
    log = (FIX / "run-insmod-6.1-ko-on-6.12.log").read_text()
    mods = [{"guest": "/m.ko", "vermagic": "6.1.0-57-cloud-amd64 SMP preempt mod_unload modversions "}]
    d = cd.run_returned(_status(log), run_output(log), waited=0.5, release="6.12.95+deb12-cloud-amd64",
                        modules=mods)
    assert d.code == "run-insmod-refused"
    assert d.cause == "the --run command exited with status 8: insmod refused /m.ko: invalid module format"
    assert d.fix.startswith("/m.ko was built for 6.1.0-57-cloud-amd64, the guest runs 6.12.95+deb12-cloud-amd64")


def test_run_script_keeps_the_command_whole():
    s = run_script("echo 'a b' # trailing comment")
    assert "( echo 'a b' # trailing comment\n) </dev/null\n" in s
    assert s.startswith('echo "<0>kdebug-run: start" > /dev/kmsg\n')


def _tty_run(records_at: dict[int, str], own: str) -> str:
    """A console of the current run script: ``own`` printed on the tty
    between the markers, with kernel records cut in at character offsets."""
    body = f"{RUN_OUT_BEGIN}\r\n{own}{RUN_OUT_END}\r\n"
    for at in sorted(records_at, reverse=True):
        body = body[:at] + records_at[at] + body[at:]
    return f"{RUN_TYPED}\r\n[    6.697301] kdebug-run: start\r\n" + body


def test_run_output_when_the_done_record_overtakes_the_tty():
    """The kernel prints its records at once; the tty's buffer drains later.
    So the done record (and others) can come before or inside the command's
    last lines: one CI run on 6.12 lost 'hello-from-run' that way."""
    done = "[    6.701805] kdebug-run: done status=0\r\n"
    other = "[    6.702000] random: crng init done\r\n"
    own = "first line\r\nhello-from-run\r\n"
    for cut in range(len(RUN_OUT_BEGIN) + 3, len(RUN_OUT_BEGIN) + 2 + len(own) + len(RUN_OUT_END) + 1):
        log = _tty_run({cut: done, len(RUN_OUT_BEGIN) + 2: other}, own)
        out = run_output(log)
        assert out == cd.RunOutput("first line\nhello-from-run", other.strip()), (cut, log)
        d = cd.run_returned(_status(log), out, waited=3.0)
        assert d.cause.endswith("its last output: first line | hello-from-run"), d.cause
    # Output without a final newline: the end marker follows it on its line.
    assert run_output(_tty_run({}, "no newline")).own == "no newline"
    assert run_output(_tty_run({}, "")) == cd.RunOutput("")
    assert cd.run_returned(0, cd.RunOutput(""), waited=3.0).cause.endswith("its last output: nothing")


def test_run_output_keeps_the_commands_own_record_shaped_lines_out_of_last_output():
    """A record-shaped line of the command's (dmesg) cannot be told from the
    kernel's; it goes with the records, and the last output is the rest."""
    out = run_output(_tty_run({}, "[    1.000000] from dmesg\r\nafter\r\n"))
    assert out == cd.RunOutput("after", "[    1.000000] from dmesg")


def test_module_identity_matches_kmod_and_binutils(default_kernel):
    """kdebug.elf reads a .ko's name, vermagic and build-id as modinfo(8) and readelf do."""
    from tests.conftest import need

    need(shutil.which("readelf") is not None and Path("/sbin/modinfo").exists(), "readelf and modinfo")
    ko = next((default_kernel.modules_dir or Path("/nonexistent")).rglob("*.ko"), None)
    need(ko is not None, "an uncompressed .ko of the default kernel")
    mod = elf.file_module(ko)
    info = {k: subprocess.run(["/sbin/modinfo", "-F", k, str(ko)], capture_output=True, text=True).stdout.strip()
            for k in ("name", "vermagic")}
    notes = subprocess.run(["readelf", "-n", str(ko)], capture_output=True, text=True).stdout
    assert mod.name == info["name"] and mod.vermagic.strip() == info["vermagic"]
    assert f"Build ID: {mod.build_id}" in notes
    with pytest.raises(elf.FormatError, match="not a kernel module"):
        elf.file_module(Path(sys.executable).resolve())  # an ELF program
    with pytest.raises(elf.FormatError, match="not an ELF file"):
        elf.file_module(Path(__file__))
