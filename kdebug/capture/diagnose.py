"""Name the cause of a failed capture stage (pure).

Each function looks at what one stage saw (console text after the trigger,
kexec's output, the host file) and returns :class:`Diagnosis` records with a
cause and a fix, the most specific first. Tested on recorded text and on
failures provoked for real (tests/vm/test_capture_faults.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kdebug.capture.panicon import SWITCHES, Splat, switch_text
from kdebug.model import PANIC_PREFIX
from kdebug.plan.diagnose import CRASHKERNEL_FAILED, Diagnosis

CAPTURE_KERNEL_START = re.compile(r"Linux version \S+")
_OOM = re.compile(r"System is deadlocked on memory|Out of memory and no killable processes|"
                  + re.escape(PANIC_PREFIX) + "Out of memory")
_PANIC = re.compile(re.escape(PANIC_PREFIX.rstrip()) + " ?(.*)")


def _last_lines(text: str, n: int = 6) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


def not_reserved(dmesg: str, crashkernel: str | None) -> Diagnosis:
    m = CRASHKERNEL_FAILED.search(dmesg)
    if not crashkernel:
        cause = "no crashkernel= on the command line, so no memory is reserved for a capture kernel"
    else:
        cause = f"crashkernel={crashkernel} was asked for but /proc/iomem has no 'Crash kernel' region"
    return Diagnosis("crashkernel-not-reserved", cause,
                     "boot with --crashkernel 128M (kdebug capture does by default) and enough --memory",
                     m.group(0).strip() if m else "")


_KEXEC_RULES: list[tuple[re.Pattern, str, str, str]] = [
    (re.compile(r".*(Function not implemented|ENOSYS|not supported).*"), "kexec-unsupported",
     "the kernel refuses kexec_load/kexec_file_load: it was built without CONFIG_KEXEC "
     "(or CONFIG_KEXEC_FILE)",
     "use a kernel with CONFIG_KEXEC, CONFIG_CRASH_DUMP and CONFIG_PROC_VMCORE, or --method qemu"),
    (re.compile(r".*(Key was rejected|Required key not available|EKEYREJECTED|ENOKEY|"
                r"signature verification failed).*", re.I), "kexec-signature",
     "kexec_file_load refused the capture kernel's signature (CONFIG_KEXEC_SIG_FORCE or lockdown "
     "wants a kernel signed by a key it trusts)",
     "sign the image with a trusted key, or boot without lockdown; --method qemu needs no kexec"),
    (re.compile(r".*(Operation not permitted|EPERM).*"), "kexec-lockdown",
     "the kernel forbids loading a kexec image (EPERM): kernel lockdown (Secure Boot) or "
     "kernel.kexec_load_disabled=1",
     "boot without lockdown and without kexec_load_disabled, or use --method qemu"),
    (re.compile(r".*(Cannot (allocate|load)|Not enough memory|ENOMEM|Could not find a free area|"
                r"Cannot assign).*", re.I), "kexec-no-room",
     "the capture kernel and its initramfs do not fit in the crashkernel region",
     "raise --crashkernel (128M is the default) or shrink the initramfs"),
]


def kexec_refused(output: str, *, missing_binary: bool = False) -> Diagnosis:
    """Why ``kexec -p`` did not load a capture kernel, from what it printed."""
    if missing_binary:
        return Diagnosis("kexec-missing",
                         "the guest has no kexec binary (the initramfs recipe lacks kexec-tools)",
                         "use the busybox recipe (--recipe busybox), which carries kexec and makedumpfile")
    for pat, code, cause, fix in _KEXEC_RULES:
        m = pat.search(output)
        if m:
            return Diagnosis(code, cause, fix, m.group(0).strip())
    return Diagnosis("kexec-failed", "kexec -p failed", "read kexec's message in console-main.log",
                     _last_lines(output, 3))


def after_trigger(console: str, *, exited: bool, timed_out: bool, kdump: bool,
                  expect_panic: str | None = None) -> list[Diagnosis]:
    """What went wrong between the trigger and the first byte of the dump."""
    start = CAPTURE_KERNEL_START.search(console)
    panic = _PANIC.search(console)
    before = console[: start.start()] if start else console
    if kdump and start:
        d = _capture_kernel_failed(console[start.start():], exited=exited, timed_out=timed_out)
    elif panic or (kdump and exited and expect_panic and re.search(expect_panic, before)):
        d = _panic_not_taken(console, panic, exited=exited, timed_out=timed_out, kdump=kdump)
    elif timed_out:
        d = Diagnosis("no-panic", "the trigger did not crash the kernel before the timeout",
                      "check the trigger's settings (sysctls) took effect, or raise --panic-timeout",
                      _last_lines(console))
    elif exited:
        d = Diagnosis("exited", "QEMU exited after the trigger without a panic on the console",
                      "read console-main.log", _last_lines(console))
    else:
        d = None
    return [d] if d is not None else []


def _capture_kernel_failed(after: str, *, exited: bool, timed_out: bool) -> Diagnosis | None:
    """The capture kernel started (``after`` is its console) but sent no dump."""
    if (m := _OOM.search(after)):
        return Diagnosis("capture-oom",
                         "the capture kernel ran out of memory: crashkernel= is too small "
                         "for it and its initramfs",
                         "raise --crashkernel to 128M or more (80M is the floor here)", m.group(0))
    if (m := _PANIC.search(after)):
        return Diagnosis("capture-panic", f"the capture kernel panicked: {m.group(1).strip()}",
                         "read console-capture.log; try a larger --crashkernel", m.group(0))
    if "kdebug-init: ready role=main" in after:
        return Diagnosis("no-vmcore",
                         "the capture kernel booted but has no /proc/vmcore (no "
                         "elfcorehdr=, or CONFIG_PROC_VMCORE missing)",
                         "use a kernel with CONFIG_CRASH_DUMP and CONFIG_PROC_VMCORE")
    if "kdebug-init: ready role=capture" in after:
        return Diagnosis("no-capture-hook",
                         "the capture kernel reached its shell but kdebug's capture hook "
                         "did not run (an --initrd without /etc/kdebug/init.d/50-capture?)",
                         "let kdebug build the initramfs (drop --initrd), or add "
                         "launch/triggers/capture-hook.sh to yours")
    if timed_out:
        return Diagnosis("capture-hang",
                         "the capture kernel started but did not reach kdebug's init "
                         "before the timeout",
                         "read console-capture.log for where it stopped; raise --timeout "
                         "if it is only slow", _last_lines(after))
    if exited:
        return Diagnosis("capture-exited", "QEMU exited while the capture kernel was booting",
                         "read console-capture.log", _last_lines(after))
    return None


def _panic_not_taken(console: str, panic: re.Match | None, *, exited: bool, timed_out: bool,
                     kdump: bool) -> Diagnosis | None:
    """The kernel panicked, but neither a capture kernel nor QEMU took the panic."""
    line = panic.group(0).strip() if panic else ""
    if kdump:
        return Diagnosis("capture-not-loaded",
                         "the kernel panicked but no capture kernel took over: none was "
                         "loaded when the panic came (kexec -p not run, or unloaded)",
                         "load one with kexec -p before the crash (kdebug capture does), "
                         "or use --method qemu", line)
    if exited:
        return Diagnosis("no-pvpanic",
                         "the kernel panicked and rebooted instead of pausing: the pvpanic "
                         "device did not report it (pvpanic module not loaded?)",
                         "load pvpanic_mmio/pvpanic_pci in the guest (the busybox recipe does)", line)
    if timed_out:
        return Diagnosis("no-guest-panicked",
                         "the kernel panicked but QEMU did not report GUEST_PANICKED",
                         "check the pvpanic device and its module", _last_lines(console))
    return None


def splat_without_panic(splat: Splat, panic_on: tuple[str, ...], waited: float) -> Diagnosis:
    """The console showed ``splat`` and the kernel went on instead of
    panicking: what would have made it a panic (and so a vmcore)."""
    cause = f"the kernel printed {splat.line!r} ({splat.name}) and went on without a panic for {waited:.0f} s"
    if splat.word is None:
        cause += f": no kernel setting turns a {splat.name} into a panic"
        fix = "use --method auto, which then takes a QEMU dump of the guest as it is"
    elif splat.word not in panic_on:
        off = ", ".join(s.sysctl for s in SWITCHES[splat.word])
        now = "--panic-on none" if not panic_on else f"--panic-on {','.join(panic_on)}"
        cause += f": {off} is off ({now})"
        fix = f"{switch_text(splat.word)} would have captured it; or --method auto for a QEMU dump as it is"
    else:
        cause += " although " + " or ".join(f"{s.sysctl}=1" for s in SWITCHES[splat.word]) + " was set"
        fix = "read console-main.log; --method auto takes a QEMU dump of the guest as it is"
    return Diagnosis("no-panic-after-splat", cause, fix, splat.line)


#: busybox insmod's refusal: "insmod: can't insert '/m.ko': invalid module format"
_INSMOD = re.compile(r"insmod: can't insert '([^']+)': (.+)")
_VERMAGIC = re.compile(r"(\S+): version magic '([^']*)' should be '([^']*)'")


@dataclass(frozen=True)
class RunOutput:
    """What the console showed of a --run command that returned: its own
    lines, and the kernel's records printed while it ran."""

    own: str
    kernel: str = ""


def run_returned(status: int, output: RunOutput, *, waited: float, release: str | None = None,
                 modules: list[dict] | tuple = ()) -> Diagnosis:
    """The --run command ended and nothing crashed: its status and last output.
    ``waited``: how long after it returned kdebug watched for a late crash;
    ``modules``: capture.json's record of the modules given to the guest."""
    tail = _last_lines(output.own, 4)
    last = _last_lines(output.own, 2)[-200:] or "nothing"
    later = f" in the {waited:.0f} s after" if waited >= 1 else ""
    if (m := _INSMOD.search(output.own)):
        why = m.group(2).strip()
        fix = "read the kernel's reason above insmod's line in console-main.log"
        v = _VERMAGIC.search(output.kernel)
        if "invalid module format" in why.lower() or v:
            # insmod checks the version magic against the running kernel's
            # release: the same string compare, made on the host's record.
            path = "/" + m.group(1).lstrip("/")
            given = next((k.get("vermagic") or "" for k in modules if k.get("guest") == path), "")
            magic = (v.group(2) if v and v.group(2) else given).split()
            built = (f"{m.group(1)} was built for {magic[0]}, the guest runs {release}"
                     if magic and release and magic[0] != release else f"{m.group(1)} does not fit this kernel")
            fix = f"{built}: build it against the guest kernel's headers, /lib/modules/{release or '<release>'}/build"
        kernel = _last_lines(output.kernel, 2)
        return Diagnosis("run-insmod-refused",
                         f"the --run command exited with status {status}: insmod refused {m.group(1)}: {why}",
                         fix, f"{kernel} | {tail}" if kernel else tail)
    if status == 127:
        return Diagnosis("run-not-found", f"the --run command was not found in the guest (status 127: {last})",
                         "add the program to the guest with --add HOST[:GUEST] (its libraries come along)", tail)
    return Diagnosis("run-returned",
                     f"the --run command exited with status {status} and the kernel did not crash{later}; "
                     f"its last output: {last}",
                     "make the reproducer crash the kernel before it exits (a crash it leaves for later: "
                     "end the command with a sleep, e.g. --run 'CMD; sleep 30')", tail)


def transfer_cut(received: int, reason: str, *, qemu_exited: bool) -> Diagnosis:
    how = "QEMU exited" if qemu_exited else "the stream stopped"
    return Diagnosis("transfer-cut",
                     f"the dump transfer was cut short: {how} after {received} bytes ({reason})",
                     "run the capture again; the incomplete data is kept as vmcore.partial only")


def dump_disk_empty(why: str) -> Diagnosis:
    return Diagnosis("dump-disk-empty", f"the capture kernel left no vmcore on the ext4 dump disk ({why})",
                     "read console-capture.log for the capture hook's own lines; run the capture again")


def split_logs(transcript: str, trigger_offset: int) -> tuple[str, str]:
    """(crashed kernel's console, capture kernel's console) of one run."""
    m = CAPTURE_KERNEL_START.search(transcript, trigger_offset)
    if not m:
        return transcript, ""
    cut = transcript.rfind("\n", 0, m.start()) + 1
    return transcript[:cut], transcript[cut:]
