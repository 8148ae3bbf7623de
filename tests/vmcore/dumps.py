"""Make real vmcores for the vmcore tier and the benchmark: boot the default
kernel under QEMU with pvpanic, crash it with a known trigger, and have QEMU
write its memory as an ELF dump. Returns what the guest said before the crash,
the independent truth the tests compare a report against."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: How each trigger crashes the guest; (shell setup, action). The action is
#: either a console line (written by the guest's shell, so the panicking task is
#: `sh`) or a QMP command.
TRIGGERS = {
    "sysrq": ("", ("console", "echo c > /proc/sysrq-trigger")),
    # An NMI nobody claims panics when kernel.unknown_nmi_panic is set
    # (arch/x86/kernel/nmi.c unknown_nmi_error -> nmi_panic "NMI: Not continuing").
    "nmi": ("echo 1 > /proc/sys/kernel/unknown_nmi_panic", ("qmp", "inject-nmi")),
}


@dataclass
class DumpFacts:
    path: str
    trigger: str
    release: str
    shell_pid: int
    ps: list[tuple[int, str]] = field(default_factory=list)  # (pid, comm) before the crash
    cpus: int = 0
    seconds: float = 0.0

    def save(self, directory: Path) -> None:
        (directory / "facts.json").write_text(json.dumps(asdict(self), indent=2))


def make_qemu_dump(out_dir: Path, trigger: str = "sysrq", memory: str = "512M",
                   timeout: float = 120.0, release: str | None = None) -> DumpFacts:
    from kdebug.guest.qemu import boot
    from kdebug.guest.qmp import Qmp
    from kdebug.plan.prepare import LaunchOptions, prepare
    from kdebug.session import new_session

    setup, (kind, action) = TRIGGERS[trigger]
    out_dir.mkdir(parents=True, exist_ok=True)
    vmcore = out_dir / "vmcore"
    t0 = time.monotonic()
    session = new_session()
    try:
        prep = prepare(LaunchOptions(release=release, pvpanic=True, memory=memory, gdb_port=0), session)
        with boot(prep.plan, session, timeout=timeout) as guest:
            release = guest.run("uname -r").output.strip()
            shell_pid = int(guest.run("echo $$").output.strip())
            cpus = int(guest.run("grep -c ^processor /proc/cpuinfo").output.strip())
            ps = []
            for line in guest.run("for d in /proc/[0-9]*; do echo ${d#/proc/} $(cat $d/comm); done",
                                  timeout=60).output.splitlines():
                pid, _, comm = line.strip().partition(" ")
                if pid.isdigit():
                    ps.append((int(pid), comm))
            if setup:
                guest.run(setup)
            with Qmp(session.qmp_socket, timeout=30) as qmp:
                if kind == "console":
                    guest.send(action)
                else:
                    qmp.cmd(action)
                deadline = time.monotonic() + timeout
                while qmp.cmd("query-status")["status"] != "guest-panicked":
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"guest did not panic after trigger {trigger}")
                    time.sleep(0.2)
                qmp.cmd("dump-guest-memory", paging=False, protocol=f"file:{vmcore}", format="elf")
                # The dump runs in the background on some QEMU versions: wait for it.
                while qmp.cmd("query-dump").get("status") == "active":
                    time.sleep(0.1)
            (out_dir / "console.log").write_text(guest.transcript)
    finally:
        session.remove()
    facts = DumpFacts(str(vmcore), trigger, release, shell_pid, ps, cpus, time.monotonic() - t0)
    facts.save(out_dir)
    return facts


def drgn_program(path):
    """drgn's own view of a dump (the independent truth the tests compare with):
    a program over it with the vmlinux its build-id names."""
    import drgn

    from kdebug.vmcore.locate import open_dump

    prog = drgn.Program()
    prog.set_core_dump(str(path))
    try:
        prog.load_debug_info([str(open_dump(Path(path)).vmlinux)], default=True)
    except drgn.MissingDebugInfoError:
        pass
    return prog


if __name__ == "__main__":  # python -m tests.vmcore.dumps OUT_DIR [trigger]
    import sys

    print(make_qemu_dump(Path(sys.argv[1]), *(sys.argv[2:3] or ["sysrq"])))
