"""Choose the accelerator: KVM only where it really works, else TCG.

On these machines /dev/kvm opens but a KVM guest hangs right after the BIOS
(nested virtualisation without vmx/svm exposed to us). The sound signal is
the CPU flags: KVM needs vmx (Intel) or svm (AMD) on the host CPU, and a
kernel that hides them cannot run a KVM guest properly whatever /dev/kvm
says. A second, runtime guard lives in the launcher (qemu._tcg_if_kvm_silent):
a KVM guest that prints nothing within a few seconds, or that QEMU refuses at
once (seen here with -cpu host: "failed to set MSR 0x10a"), is restarted
under TCG.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from kdebug.errors import UsageError

KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12


@dataclass(frozen=True)
class AccelChoice:
    name: str  # "kvm" or "tcg"
    reason: str


def cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def kvm_status(dev: Path = Path("/dev/kvm"), cpuinfo: str | None = None) -> tuple[bool, str]:
    """(usable, why) from /dev/kvm and the CPU flags; no guest is started."""
    if not dev.exists():
        return False, f"{dev} does not exist"
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return False, f"{dev} cannot be opened ({e.strerror})"
    try:
        api = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as e:
        return False, f"{dev} does not answer KVM_GET_API_VERSION ({e.strerror})"
    finally:
        os.close(fd)
    if api != KVM_API_VERSION:
        return False, f"{dev} speaks KVM API {api}, not {KVM_API_VERSION}"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    flags = cpu_flags(cpuinfo)
    if not flags & {"vmx", "svm"}:
        return False, (f"{dev} opens but the CPU shows no vmx/svm flag (nested virtualisation "
                       "not exposed): KVM guests hang here")
    return True, f"{dev} works and the CPU has {'vmx' if 'vmx' in flags else 'svm'}"


def choose_accel(requested: str = "auto", **kw) -> AccelChoice:
    if requested == "tcg":
        return AccelChoice("tcg", "asked for TCG")
    ok, why = kvm_status(**kw)
    if requested == "kvm":
        if not ok:
            raise UsageError(f"--accel kvm: {why}", hint="use --accel auto or tcg")
        return AccelChoice("kvm", "asked for KVM: " + why)
    if requested != "auto":
        raise UsageError(f"unknown accelerator {requested!r} (auto, kvm, tcg)")
    if ok:
        return AccelChoice("kvm", why)
    return AccelChoice("tcg", f"falling back to TCG: {why}")
