"""Name the cause of a failed boot from the console log (pure).

Each rule matches a message the kernel (or QEMU) prints for one of the
classic failures and says, in plain words, what happened and what to do.
The rules are tested on recorded logs (tests/fixtures/console/) and, where a
failure can be provoked, on real boots (tests/vm/test_diagnose_vm.py).
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass

from kdebug.model import PANIC_PREFIX


@dataclass(frozen=True)
class Diagnosis:
    code: str
    cause: str
    fix: str
    evidence: str = ""

    def format(self) -> str:
        ev = f"\n    console: {self.evidence}" if self.evidence else ""
        return f"{self.cause}\n    fix: {self.fix}{ev}"


#: What the kernel says when it cannot reserve crashkernel=: x86's own code up
#: to v6.6 ("crashkernel reservation failed - No suitable area found."), the
#: generic reserve_crashkernel_generic() since v6.7 ("cannot allocate
#: crashkernel (size:0x...)"; "crashkernel reservation failed - memory is in
#: use." for a fixed base).
CRASHKERNEL_FAILED = re.compile(r"crashkernel reservation failed.*|Cannot reserve \S+ crashkernel.*|"
                                r"cannot allocate crashkernel.*")


def _errno_name(n: int) -> str:
    return errno.errorcode.get(n, f"errno {n}")


def _init_exec(m: re.Match) -> Diagnosis:
    path, err = m.group(1), int(m.group(2))
    if err == errno.ENOENT:
        cause = (f"the kernel found {path} but could not execute it (error -2, ENOENT): a script whose "
                 "#! interpreter is missing from the initramfs, or a dynamic binary without its "
                 "loader (/lib64/ld-linux-x86-64.so.2) and libraries")
        fix = ("put the interpreter in the initramfs (e.g. busybox with /bin/sh), or link init "
               "statically (gcc -static)")
    elif err == errno.ENOEXEC:
        cause = (f"{path} is not in a format this kernel executes (error -8, ENOEXEC): wrong "
                 "architecture, a script without a #! line, or a truncated file")
        fix = "build init for x86-64 and start scripts with #!/bin/sh"
    elif err == errno.EACCES:
        cause = f"{path} is not executable (error -13, EACCES)"
        fix = "give it mode 0755 in the archive"
    else:
        cause = f"executing {path} failed with error -{err} ({_errno_name(err)})"
        fix = "check the init binary and what it needs in the initramfs"
    return Diagnosis("init-exec-failed", cause, fix, m.group(0))


def _init_exited(m: re.Match) -> Diagnosis:
    code = int(m.group(1), 16)
    sig, status = code & 0x7F, (code >> 8) & 0xFF
    if sig:
        how = f"was killed by signal {sig}"
    elif status:
        how = f"exited with status {status}"
    else:
        how = "returned (exit status 0)"
    return Diagnosis(
        "init-exited",
        f"init (PID 1) {how}; PID 1 must never exit, so the kernel panicked "
        "('Attempted to kill init')",
        "keep init running (end it with an endless loop, exec a shell, or power off with "
        "reboot(RB_POWER_OFF))",
        m.group(0),
    )


def _unpack(m: re.Match) -> Diagnosis:
    why = m.group(1).strip()
    if "invalid magic" in why:
        cause = ("the initramfs is corrupt where archives are joined: a member after the first "
                 "does not start on a 4-byte boundary or is not cpio/compressed data, and "
                 "everything after it was dropped")
        fix = "pad each concatenated member to 4 bytes (kdebug initramfs does), or rebuild it"
    elif "write error" in why or "no memory" in why.lower():
        cause = "the initramfs did not fit in the guest's memory while unpacking"
        fix = "raise --memory or make the initramfs smaller"
    else:
        cause = f"the initramfs could not be unpacked ({why}): corrupt, truncated or an unsupported compression"
        fix = "rebuild it (kdebug initramfs build) and check the kernel supports its compression"
    return Diagnosis("initramfs-unpack", cause, fix, m.group(0))


def _root_open(m: re.Match) -> Diagnosis:
    dev = m.group(1)
    if dev in ("", "(null)"):
        return Diagnosis(
            "no-init",
            "the kernel found no /init in the initramfs (or got no initramfs) and no root= "
            "device, so it had nothing to run",
            "pass an initramfs with an executable /init (kdebug initramfs build busybox) or a "
            "root= disk",
            m.group(0),
        )
    return Diagnosis(
        "root-device-missing",
        f"the kernel has no driver for the root device {dev!r} (distro kernels build virtio_blk "
        "as a module, which only an initramfs can load)",
        "boot with kdebug's busybox initramfs (it loads virtio_blk and switches to root=), or "
        "build the disk driver and file system into the kernel",
        m.group(0),
    )


# (code, pattern, builder or (cause, fix)), most specific first.
_RULES: list[tuple[re.Pattern, object]] = [
    (re.compile(r"linux kernel too old to load a ram disk|"
                r"Error loading uncompressed kernel without PVH ELF Note"),
     Diagnosis("elf-kernel",
               "QEMU was given an uncompressed ELF vmlinux as the kernel; it can only boot "
               "that without an initrd (and only with a PVH note)",
               "pass the bzImage (arch/x86/boot/bzImage or /boot/vmlinuz-RELEASE) as --kernel "
               "and the vmlinux as --vmlinux")),
    (re.compile(r"Initramfs unpacking failed: ?(.*)"), _unpack),
    (re.compile(r"Failed to execute (\S+) \(error -(\d+)\)"), _init_exec),
    (re.compile(r"Requested init (\S+) failed \(error -(\d+)\)"), _init_exec),
    (re.compile(r"Attempted to kill init! exitcode=0x([0-9a-fA-F]+)"), _init_exited),
    (re.compile(r"VFS: Cannot open root device \"([^\"]*)\""), _root_open),
    (re.compile(r"VFS: Unable to mount root fs on unknown-block\(0,0\)"),
     Diagnosis("no-init",
               "the kernel found no /init in the initramfs (or got no initramfs) and could "
               "not mount a root file system",
               "pass an initramfs with an executable /init (kdebug initramfs build busybox)")),
    (re.compile(r"VFS: Unable to mount root fs on (\S+)"),
     Diagnosis("root-mount-failed",
               "the root device exists but its file system could not be mounted (no driver "
               "for the file system, or a corrupt image)",
               "check rootfstype= and that the file system (e.g. ext4) is built in")),
    (re.compile(r"No working init found"),
     Diagnosis("no-init", "no init program could be run (tried /sbin/init, /etc/init, /bin/init, /bin/sh)",
               "put an executable /init in the initramfs (kdebug initramfs build busybox)")),
    (CRASHKERNEL_FAILED,
     Diagnosis("crashkernel-not-reserved",
               "the kernel could not reserve the crashkernel= region",
               "lower crashkernel= or raise --memory")),
    (re.compile(r"System is deadlocked on memory|Out of memory and no killable processes"),
     Diagnosis("out-of-memory",
               "the kernel ran out of memory with nothing left to kill (in a capture kernel: "
               "crashkernel= is too small)",
               "raise --memory, or crashkernel= to 128M or more")),
]

_PANIC = re.compile(re.escape(PANIC_PREFIX) + "(.*)")

#: The line Linux prints once the crashkernel= region is reserved. Up to v6.6
#: x86's reserve_crashkernel() says "Reserving 128MB of memory at 864MB for
#: crashkernel (System RAM: 1023MB)"; since Linux commit 9c08a2a139fe ("x86:
#: kdump: use generic interface to simplify crashkernel reservation code")
#: (v6.7) x86 reserves through reserve_crashkernel_generic() from commit
#: 0ab97169aa05 ("crash_core: add generic function to do reservation"), now in
#: kernel/crash_reserve.c, which says "crashkernel reserved: 0x0000000036000000
#: - 0x000000003e000000 (128 MB)".
_CRASHKERNEL_RESERVED = re.compile(r"Reserving \d+MB of memory at \d+MB for crashkernel|"
                                   r"crashkernel reserved: 0x[0-9a-f]+ - 0x[0-9a-f]+ \(\d+ MB\)")


def crashkernel_reserved(console: str) -> bool:
    """Whether the boot log says the crashkernel= region was reserved."""
    return _CRASHKERNEL_RESERVED.search(console) is not None


def diagnose(console: str, *, qemu_stderr: str = "", timed_out: bool = False,
             expect_crashkernel: bool = False, last_lines: int = 8) -> list[Diagnosis]:
    """All diagnoses that fit, the most specific first; empty if nothing is known."""
    found: list[Diagnosis] = []
    text = qemu_stderr + "\n" + console
    for pat, what in _RULES:
        m = pat.search(text)
        if not m:
            continue
        d = what(m) if callable(what) else Diagnosis(what.code, what.cause, what.fix, m.group(0).strip())
        if all(d.code != f.code for f in found):
            found.append(d)
    if expect_crashkernel and not crashkernel_reserved(console) and console.strip() and \
            all(d.code != "crashkernel-not-reserved" for d in found):
        found.append(Diagnosis("crashkernel-not-reserved",
                               "crashkernel= was asked for but the kernel did not reserve it "
                               "(no 'crashkernel reserved' or 'Reserving ... for crashkernel' line)",
                               "check the kernel has CONFIG_KEXEC/CRASH_DUMP and that "
                               "crashkernel= fits the guest's memory"))
    if not found and (m := _PANIC.search(console)):
        found.append(Diagnosis("panic", f"the kernel panicked: {m.group(1).strip()}",
                               "read the console log above the panic line", m.group(0).strip()))
    if timed_out and not found:
        lines = [ln for ln in console.splitlines() if ln.strip()]
        if not lines:
            found.append(Diagnosis(
                "no-output",
                "the guest printed nothing on the serial console",
                "check console=ttyS0 is on the command line and the kernel has the 8250 serial "
                "console built in; a hung accelerator also looks like this (try --accel tcg)"))
        else:
            tail = "\n      ".join(lines[-last_lines:])
            found.append(Diagnosis("hang", "the boot hung: no progress before the timeout",
                                   "look at the last console lines; raise --timeout if the guest is only slow",
                                   tail))
    return found
