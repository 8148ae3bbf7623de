"""Helpers for tests that drive kd- commands in a real gdb on a live guest:
read the truth from the guest's own /proc before stopping it, then attach."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.attach.mi import GdbMI, mi_record
from kdebug.attach.plan import GdbPlan, gdb_argv, host_python_path, index_cache_dir
from kdebug.decode.elfsyms import read_vmlinux
from kdebug.guest.introspect import kaslr_offset_from_qmp
from kdebug.guest.qmp import Qmp
from kdebug.model import FrameRecord, ModuleRecord, PrintkRecord, TaskRecord

STAT = re.compile(r"^(\d+) \((.*)\) (\S) (\d+) ", re.S)
#: Where the threaded helper (kd_threads.c) sits in the guest, and its threads.
THREADS_GUEST = "bin/kd-threads"
EXTRA_THREADS = 3


def threads_helper() -> dict[str, Path]:
    """extra_files for a guest that runs a multi-threaded process in
    read_truth: kd_threads.c built static, once per source."""
    import hashlib
    import subprocess

    from kdebug.paths import cache_dir
    from tests.conftest import need_tool

    need_tool("gcc")
    src = Path(__file__).with_name("kd_threads.c")
    out = cache_dir("test-bin") / f"kd-threads-{hashlib.sha256(src.read_bytes()).hexdigest()[:12]}"
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        subprocess.run(["gcc", "-static", "-O2", "-pthread", "-o", str(tmp), str(src)], check=True,
                       capture_output=True, timeout=120)
        tmp.replace(out)
    return {THREADS_GUEST: out}


@dataclass
class Truth:
    """What the guest said about itself, read through its shell."""

    tasks: dict[int, tuple[str, str, int]] = field(default_factory=dict)  # pid -> (comm, state, ppid)
    dmesg: list[str] = field(default_factory=list)
    modules: list[list[str]] = field(default_factory=list)
    cmdline: str = ""
    version: str = ""
    stext: int = 0
    ncpus: int = 0
    init_stack: list[str] = field(default_factory=list)
    module_symbols: dict[str, int] = field(default_factory=dict)  # text and data symbols of modules
    module_sections: dict[str, dict[str, int]] = field(default_factory=dict)  # /sys/module/NAME/sections
    sleepers: list[int] = field(default_factory=list)
    threaded: int = 0  # pid of the kd-threads process, whose threads are in tasks too
    child: int = 0  # pid of kd-child, forked by a kd-threads thread that is not the leader
    shell: int = 0  # pid of the shell that ran the reads: it wakes when each one ends


def read_truth(guest, sleepers: int = 2) -> Truth:
    t = Truth()
    out = guest.run(" ".join(["sleep 600 &"] * sleepers) + " echo started", timeout=30).output
    assert "started" in out
    t.sleepers = [int(p) for p in guest.run("pidof sleep").output.split()]
    if guest.run(f"test -x /{THREADS_GUEST}").status == 0:
        # $!, not pidof: busybox's pidof also matches the child by its argv[0]
        t.threaded = int(guest.run(f"/{THREADS_GUEST} {EXTRA_THREADS} & echo $!", timeout=30).output.split()[-1])
        # all threads and the child up (and named) before anyone looks
        guest.run("while ! pidof kd-child; do sleep 0.1; done", timeout=30)
        t.child = int(guest.run("pidof kd-child").output.split()[0])
        guest.run(f"while [ $(ls /proc/{t.threaded}/task | wc -l) -lt {EXTRA_THREADS + 1} ]; do sleep 0.1; done",
                  timeout=30)
    # Every thread of every process: /proc/PID/task/TID/stat.
    for line in guest.run("cat /proc/[0-9]*/task/[0-9]*/stat 2>/dev/null", timeout=60).output.splitlines():
        m = STAT.match(line)
        if m and m.group(2) == "cat":
            t.shell = int(m.group(4))
        elif m:
            t.tasks[int(m.group(1))] = (m.group(2), m.group(3), int(m.group(4)))
    t.dmesg = [line for line in guest.run("dmesg", timeout=60).output.splitlines() if line.strip()]
    t.modules = [line.split() for line in guest.run("cat /proc/modules").output.splitlines() if line.strip()]
    t.cmdline = guest.run("cat /proc/cmdline").output.strip()
    t.version = guest.run("cat /proc/version").output.strip()
    t.stext = int(guest.run("grep -w _stext /proc/kallsyms").output.split()[0], 16)
    t.ncpus = len(guest.run("ls -d /sys/devices/system/cpu/cpu[0-9]*").output.split())
    t.init_stack = re.findall(r"\] ([\w.]+)\+", guest.run("cat /proc/1/stack").output)
    seen: dict[str, int] = {}
    for line in guest.run("grep -i ' [td] .*\\[' /proc/kallsyms", timeout=60).output.splitlines():
        addr, _kind, name, mod = line.split()[:4]
        # Functions named after their module: unique, so gdb cannot pick a namesake.
        if name.startswith(mod.strip("[]") + "_") and name.isidentifier():
            seen[name] = seen.get(name, 0) + 1
            t.module_symbols[name] = int(addr, 16)
    t.module_symbols = {n: a for n, a in t.module_symbols.items() if seen[n] == 1}
    out = guest.run("for m in $(cut -d' ' -f1 /proc/modules); do for f in /sys/module/$m/sections/.* "
                    "/sys/module/$m/sections/*; do [ -f $f ] && echo $m ${f##*/} $(cat $f); done; done",
                    timeout=60).output
    for line in out.splitlines():
        if len(parts := line.split()) == 3 and parts[2].startswith("0x"):
            t.module_sections.setdefault(parts[0], {})[parts[1]] = int(parts[2], 16)
    return t


def section_of(truth: Truth, addr: int) -> str:
    """The module section (as /sys/module shows them) that holds ``addr``."""
    best = max(((a, n) for secs in truth.module_sections.values() for n, a in secs.items() if a <= addr),
               default=(0, ""))
    return best[1]


def attach_gdb(guest, kernel) -> tuple[GdbMI, int]:
    """Stop ``guest`` through QMP, find its KASLR offset, start gdb on it."""
    with Qmp(guest.session.qmp_socket) as q:
        q.cmd("stop")
        offset = kaslr_offset_from_qmp(q, kernel.vmlinux)
    plan = GdbPlan(vmlinux=kernel.vmlinux, port=guest.plan.gdb_port, kaslr_offset=offset, styled=False,
                   index_cache=index_cache_dir(), kernel_scripts=kernel.gdb_scripts,
                   module_dirs=[kernel.module_debug_dir] if kernel.module_debug_dir else [],
                   python_path=host_python_path())
    return GdbMI(gdb_argv(plan)), offset


def release(guest, driver) -> None:
    """Detach gdb and let the guest run again (others share it)."""
    driver.close()
    if guest.alive():
        with Qmp(guest.session.qmp_socket) as q:
            q.cmd("cont")


def link_stext(kernel) -> int:
    return read_vmlinux(kernel.vmlinux, ["_stext"])[1]["_stext"]


#: The record each kd- command's MI twin returns.
RECORD_OF = {"kd-ps": TaskRecord, "kd-lsmod": ModuleRecord, "kd-dmesg": PrintkRecord, "kd-bt": FrameRecord}


def kd_records(driver, cmd: str) -> list[dict]:
    """A kd- command's records through its MI twin (``kd-ps --pid 1`` runs
    ``-kd-ps --pid 1``), as the records' dicts: no console text is read."""
    name, *args = shlex.split(cmd)
    return [mi_record(RECORD_OF[name], d).to_dict() for d in driver.records(name, *args)]


def dmesg_lines(records) -> list[str]:
    """kd-dmesg --json records as the kernel's syslog prints them (a prefix per line)."""
    lines = []
    for r in records:
        ts = r["timestamp_ns"]
        prefix = f"[{ts // 1_000_000_000:5d}.{ts % 1_000_000_000 // 1000:06d}]"
        lines += [f"{prefix} {part}" for part in r["text"].split("\n")]
    return lines
