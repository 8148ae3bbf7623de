"""KVM that opens but cannot run a guest (nested virtualisation not
exposed): noticed within seconds of the start, and the same plan started
again under TCG."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TypeVar

import pexpect

from kdebug.plan.diagnose import Diagnosis
from kdebug.plan.plan import LaunchPlan
from kdebug.session import Session

G = TypeVar("G")  # kdebug.guest.qemu.Guest, which starts through here

QEMU_ERROR = re.compile(r"qemu-system-\w+: (.*)")
#: QEMU 10 under a KVM that cannot run the guest (no nested virtualisation)
#: stops the vCPU with this instead of exiting or hanging silently.
KVM_INTERNAL_ERROR = re.compile(r"(KVM internal error[^\r\n]*)")

#: A working KVM guest prints its first kernel line well within this.
KVM_SILENCE_SECONDS = 8.0


def tcg_if_kvm_silent(guest: G, start: Callable[[LaunchPlan, Session], G]) -> G:
    """KVM that opens but hangs (broken nested virtualisation) prints nothing,
    or QEMU refuses it at once: restart the same plan under TCG rather than
    wait for the boot timeout. ``guest``: a just started Guest; ``start``:
    Guest.start, for the restart."""
    try:
        i = guest.child.expect([re.compile(r"\S[^\n]*\n"), pexpect.EOF, pexpect.TIMEOUT],
                               timeout=KVM_SILENCE_SECONDS)
    except OSError:
        i = 2
    if i == 0 and not QEMU_ERROR.search(guest.child.after) and not KVM_INTERNAL_ERROR.search(guest.child.after):
        return guest
    if i == 2:
        why = f"KVM guest printed nothing in {KVM_SILENCE_SECONDS:g} s"
    else:
        # e.g. "failed to set MSR 0x10a": QEMU gives up on KVM at once
        try:
            guest.child.expect(pexpect.EOF, timeout=5)
        except (pexpect.TIMEOUT, OSError):
            pass
        msgs = QEMU_ERROR.findall(guest.transcript) or KVM_INTERNAL_ERROR.findall(guest.transcript)
        why = "QEMU failed under KVM" + (f" ({msgs[0].strip()})" if msgs else "")
    guest.close()
    plan = dataclasses.replace(guest.plan, accel="tcg", accel_fallback=False)
    retry = start(plan, guest.session)
    retry.warnings.append(Diagnosis("kvm-failed", f"{why}: restarted under TCG",
                                    "use --accel tcg to skip the KVM try"))
    return retry
