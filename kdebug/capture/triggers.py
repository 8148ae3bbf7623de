"""How each ``--trigger`` crashes the guest, as data (pure).

A trigger is guest settings (sysctls), an action (a console line, or a QMP
command) and the panic message the dump's log must then hold, which the
tests check against the kernel log read from the vmcore.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kdebug.errors import UsageError
from kdebug.model import PANIC_PREFIX

#: Where the trigger module lands in the initramfs (see module.py).
MODULE_GUEST_PATH = "/lib/kdebug/kdebug_trigger.ko"


@dataclass(frozen=True)
class Trigger:
    name: str
    summary: str
    sysctls: tuple[tuple[str, str], ...] = ()
    console: str = ""  # shell line that crashes the guest
    qmp: str = ""  # or a QMP command
    panic: str = re.escape(PANIC_PREFIX)  # regex the crashed kernel's log matches
    module: bool = False  # needs kdebug_trigger.ko
    seconds: float = 60.0  # from the action to the panic, at most
    returns: bool = False  # a reproducer: its end (and exit status) is watched for

    def setup_commands(self) -> list[str]:
        cmds = [f"echo {v} > /proc/sys/{k.replace('.', '/')}" for k, v in self.sysctls]
        if self.module:
            cmds.append(f"insmod {MODULE_GUEST_PATH}")
        return cmds


def _module(word: str) -> str:
    return f"echo {word} > /proc/kdebug_trigger"


TRIGGERS: dict[str, Trigger] = {t.name: t for t in [
    Trigger("sysrq", "sysrq-c: the kernel's own crash trigger",
            console="echo c > /proc/sysrq-trigger", panic=r"sysrq triggered crash"),
    Trigger("oops", "a NULL pointer write in a module, with panic_on_oops",
            sysctls=(("kernel.panic_on_oops", "1"),), console=_module("oops"), module=True,
            panic=r"BUG: kernel NULL pointer dereference"),
    Trigger("bug", "BUG() in a module, with panic_on_oops",
            sysctls=(("kernel.panic_on_oops", "1"),), console=_module("bug"), module=True,
            panic=r"kernel BUG at .*kdebug_trigger"),
    Trigger("warn", "WARN() in a module, with panic_on_warn",
            sysctls=(("kernel.panic_on_warn", "1"),), console=_module("warn"), module=True,
            panic=r"panic_on_warn set"),
    Trigger("hung-task", "a task asleep uninterruptibly, with hung_task_panic and a 1 s timeout",
            sysctls=(("kernel.hung_task_panic", "1"), ("kernel.hung_task_timeout_secs", "1")),
            console=_module("hung"), module=True, panic=r"hung_task: blocked tasks"),
    Trigger("softlockup", "a CPU spinning with preemption off, with softlockup_panic",
            sysctls=(("kernel.softlockup_panic", "1"), ("kernel.watchdog_thresh", "1")),
            console=_module("softlockup"), module=True, panic=r"softlockup: hung tasks"),
    # Five dd's each read 256M of zeros into one buffer: 1.25G in a few seconds,
    # more than a 1G guest has (each alone passes the overcommit heuristic).
    Trigger("oom", "a memory hog (dd with 256M buffers) with panic_on_oom",
            sysctls=(("vm.panic_on_oom", "1"),),
            console="for i in 1 2 3 4 5; do dd if=/dev/zero of=/dev/null bs=256M count=1 & done; wait",
            panic=r"Out of memory: .*panic_on_oom is enabled"),
    # arch/x86/kernel/nmi.c unknown_nmi_error() -> nmi_panic(regs, "NMI: Not continuing")
    Trigger("nmi", "an NMI from QEMU (QMP inject-nmi), with unknown_nmi_panic",
            sysctls=(("kernel.unknown_nmi_panic", "1"),), qmp="inject-nmi",
            panic=r"NMI: Not continuing"),
]}

PANIC_LINE = re.compile(re.escape(PANIC_PREFIX.rstrip()) + " ?(.*)")


def get_trigger(name: str, run: str | None = None) -> Trigger:
    """The trigger called ``name``; ``run`` makes a user reproducer one."""
    if run is not None:
        return Trigger("run", "the user's reproducer", console=run, returns=True)
    try:
        return TRIGGERS[name]
    except KeyError:
        raise UsageError(f"unknown trigger {name!r}",
                         hint="one of " + ", ".join(TRIGGERS)) from None

