"""A developer's own module, end to end: tests/fixtures/oot/m.c, built
against each kernel's headers with its Kbuild as a developer builds one,
writes through a NULL pointer from a work item after insmod has returned.

Each result is checked against what kdebug did not write: the console's own
Oops text (the faulting function and offset, the taint letters), the line
of m.c marked BAD-DEREF, readelf's reading of the module's build-id, the log
drgn reads from the dump."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, need, need_tool

SOURCE = FIXTURES / "oot"
BAD_LINE = next(i for i, ln in enumerate((SOURCE / "m.c").read_text().splitlines(), 1) if "/* BAD-DEREF */" in ln)
OOPS = "BUG: kernel NULL pointer dereference, address: 0000000000000000"
RIP = re.compile(r"RIP: 0010:(\w+)\+(0x[0-9a-f]+)/0x[0-9a-f]+ \[m\]")


def build_module(release: str, dest: Path, source: Path = SOURCE) -> Path:
    """m.ko built against /lib/modules/RELEASE/build, as kdebug builds its trigger module."""
    headers = Path(f"/lib/modules/{release}/build")
    need((headers / "Makefile").is_file(), f"no kernel headers for {release}")
    need_tool("make", "gcc")
    for f in ("m.c", "Kbuild"):
        shutil.copy(source / f, dest)
    r = subprocess.run(["make", "-C", str(headers), f"M={dest}", "modules"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return dest / "m.ko"


@pytest.fixture(scope="module")
def module(kernel, tmp_path_factory) -> Path:
    need_tool("qemu-system-x86_64")
    return build_module(kernel.release, tmp_path_factory.mktemp("m"))


def kdebug(*args, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kdebug.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def build_id(ko: Path) -> str:
    notes = subprocess.run(["readelf", "-n", str(ko)], capture_output=True, text=True, check=True).stdout
    return re.search(r"Build ID: ([0-9a-f]+)", notes).group(1)


def error_line(r: subprocess.CompletedProcess) -> str:
    """The one error line of a failed crash-loop (the others are its progress)."""
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("kdebug: error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def test_module_oops_to_its_source_line(module, tmp_path):
    """The issue's whole path with no other flags: crash-loop --add --run.
    Checked against the kernel's own Oops text, the source and readelf."""
    r = kdebug("crash-loop", "--add", f"{module}:/m.ko", "--run", "insmod /m.ko", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    (cap,) = tmp_path.glob("kdebug-capture-*")
    report = json.loads((cap / "report.json").read_text())
    # The kernel's own Oops text, from the dump's log as drgn's helper reads it
    # (the console of a 6.12 guest stops mid-Oops: pvpanic pauses it before
    # panic() flushes the consoles).
    from drgn.helpers.linux.printk import get_dmesg

    from tests.vmcore.dumps import drgn_program

    log = get_dmesg(drgn_program(cap / "vmcore")).decode(errors="replace")
    rip = RIP.search(log)
    assert OOPS in log and rip, log[-3000:]
    # The guilty frame is the one the console's Oops blames, with m.c's line.
    guilty = report["signature"].rsplit(" in ", 1)[1]
    assert guilty == rip.group(1) == "m_work_fn"
    frame = next(f for f in report["panic"]["backtrace"] if f["function"] == guilty)
    # (The size may differ: the kernel's is the distance to the next kallsyms
    # symbol, padding included; drgn's is the ELF symbol's own.)
    assert (frame["module"], frame["offset"]) == ("m", int(rip.group(2), 16))
    assert Path(frame["file"]).name == "m.c" and frame["line"] == BAD_LINE, frame
    assert not any("no debug info for module(s) m" in w for w in report["warnings"])
    # capture.json: panic_on_oops set by default, the module kept with readelf's build-id
    record = json.loads((cap / "capture.json").read_text())
    assert record["panic_on"] == {"words": ["oops"], "sysctls": {"kernel.panic_on_oops": "1"}, "absent": []}
    (mod,) = record["modules"]
    assert (mod["name"], mod["guest"], mod["build_id"]) == ("m", "/m.ko", build_id(module))
    kept = cap / mod["file"]
    assert kept.read_bytes() == module.read_bytes() and stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE((cap / "vmcore").stat().st_mode) == 0o600
    # The report's module list has it out-of-tree and tainting, as "Modules linked in: m(OE)" says.
    taints = re.search(r"Modules linked in: .*\bm\((\w+)\)", log).group(1)
    (m,) = [m for m in report["modules"] if m["name"] == "m"]
    assert m["out_of_tree"] and m["taints"] == taints
    # ... and among the tainting modules, with the build-id the dump holds for
    # it (readelf's of the file) and its debug info read from the kept copy.
    (t,) = [t for t in report["tainting_modules"] if t["name"] == "m"]
    assert (t["taints"], t["build_id"], t["debug_file"]) == (taints, build_id(module), str(kept))
    # kdebug shell on the capture loads the kept module's debug info too.
    sh = kdebug("shell", str(cap), "-c", "print([str(x.debug_file_path) for x in prog.modules() if x.name == 'm'])",
                cwd=tmp_path, timeout=300)
    assert sh.returncode == 0, sh.stderr
    assert sh.stdout.strip().splitlines()[-1] == repr([str(kept)])


def test_panic_on_none_stops_at_the_oops(module, tmp_path):
    """panic_on_oops off: kdebug stops when the Oops is printed and the kernel
    goes on, instead of waiting out the panic timeout, and names the fix."""
    out = tmp_path / "cap"
    r = kdebug("crash-loop", "--add", f"{module}:/m.ko", "--run", "insmod /m.ko", "--panic-on", "none",
               "--out", str(out), cwd=tmp_path)
    line = error_line(r)
    assert f"the kernel printed {OOPS!r} (NULL pointer dereference) and went on without a panic" in line
    assert "kernel.panic_on_oops is off (--panic-on none)" in line
    assert "--panic-on oops (kernel.panic_on_oops=1; boot: oops=panic) would have captured it" in line
    console = (out / "console-main.log").read_text()
    assert OOPS in console and "Kernel panic" not in console
    record = json.loads((out / "capture.json").read_text())
    assert record["failed_stage"] == "panic" and not (out / "vmcore").exists()
    assert record["error"]["diagnoses"][0]["code"] == "no-panic-after-splat"  # not the timeout's
    assert record["splat"]["line"] == OOPS and record["splat"]["panic_on"] == "oops"
    assert record["panic_on"]["sysctls"] == {"kernel.panic_on_oops": "0"}


def test_auto_dumps_the_oopsed_guest(module, tmp_path):
    out = tmp_path / "cap"
    r = kdebug("crash-loop", "--method", "auto", "--panic-on", "none", "--add", f"{module}:/m.ko",
               "--run", "insmod /m.ko", "--out", str(out), "--no-crash", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "took a QEMU dump of the guest as it is" in r.stderr
    record = json.loads((out / "capture.json").read_text())
    assert (record["method"], record["requested_method"], record["ok"]) == ("qemu", "auto", True)
    assert record["splat"]["line"] == OOPS
    assert stat.S_IMODE((out / "vmcore").stat().st_mode) == 0o600
    # The dump is of the guest after its Oops: drgn reads the Oops from the dump's own log.
    report = json.loads((out / "report.json").read_text())
    assert any(OOPS in rec["text"] for rec in report["log_tail"]), report["log_tail"][-5:]


def test_run_command_not_found_and_one_that_exits(tmp_path):
    r = kdebug("crash-loop", "--run", "nosuchcmd --x", "--out", str(tmp_path / "a"), cwd=tmp_path)
    line = error_line(r)
    assert "the --run command was not found in the guest (status 127: " in line and "nosuchcmd: not found" in line
    r = kdebug("crash-loop", "--run", "echo hello-from-run; true", "--out", str(tmp_path / "b"), cwd=tmp_path)
    line = error_line(r)
    assert "the --run command exited with status 0 and the kernel did not crash" in line
    assert "its last output: hello-from-run" in line
    for d, status, code in (("a", 127, "run-not-found"), ("b", 0, "run-returned")):
        record = json.loads((tmp_path / d / "capture.json").read_text())
        assert record["run_status"] == status and record["error"]["diagnoses"][0]["code"] == code
        assert not (tmp_path / d / "vmcore").exists()


def test_module_built_for_another_kernel_shows_insmods_error(kernel, tmp_path):
    other = next((d.name for d in sorted(Path("/lib/modules").iterdir())
                  if d.name != kernel.release and (d / "build" / "Makefile").is_file()), None)
    need(other is not None, "a second kernel generation with its headers")
    (tmp_path / "m").mkdir()
    ko = build_module(other, tmp_path / "m")
    r = kdebug("crash-loop", "--add", f"{ko}:/m.ko", "--run", "insmod /m.ko", "--out", str(tmp_path / "c"),
               cwd=tmp_path)
    line = error_line(r)
    console = (tmp_path / "c" / "console-main.log").read_text()
    insmod = re.search(r"insmod: can't insert '/m.ko': (.+)", console).group(1).strip()
    assert f"insmod refused /m.ko: {insmod}" in line
    assert f"/m.ko was built for {other}, the guest runs {kernel.release}" in line


def test_kdump_capture_then_postmortem_with_module_dir(module, tmp_path, kernel):
    """The kdump method, and a dump taken elsewhere: --module-dir finds the module by build-id."""
    need_tool("makedumpfile")
    out = tmp_path / "cap"
    r = kdebug("capture", "--add", f"{module}:/m.ko", "--run", "insmod /m.ko", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out / "capture.json").read_text())["method"] == "kdump"
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    shutil.copy(out / "vmcore", alone / "dump.core")

    def frame(*extra):
        r = kdebug("postmortem", str(alone / "dump.core"), "--no-crash", "-q", "--json", *extra, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        return next(f for f in doc["panic"]["backtrace"] if f["function"] == "m_work_fn"), doc["warnings"]

    f, warnings = frame()
    assert f["file"] == "" and any("no debug info for module(s) m" in w and "--module-dir" in w for w in warnings)
    f, warnings = frame("--module-dir", str(module.parent))
    assert Path(f["file"]).name == "m.c" and f["line"] == BAD_LINE
    # A module rebuilt since (another build-id) is not taken for the one in the dump.
    src, other = tmp_path / "src", tmp_path / "rebuilt"
    src.mkdir()
    other.mkdir()
    for name in ("m.c", "Kbuild"):
        (src / name).write_text((SOURCE / name).read_text().replace("writing through", "writing to"))
    build_module(kernel.release, other, src)
    f, warnings = frame("--module-dir", str(other))
    assert f["file"] == "" and any("another build-id" in w for w in warnings)
