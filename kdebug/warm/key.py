"""What a saved guest is, as data (pure): the key a state is filed under,
its record, the checks before a restore, and which states a full cache
gives up.

The key is made of content, never of paths: the kernel image's, the
initramfs' (kdebug's /init and every file in it) and the firmware's
digests, the command line, memory, CPUs, machine type, accelerator, the
devices (drives by format, serial ports by name: their host files are the
run's own), the QEMU binary, and the stage the state was taken at ("ready":
the shell; "armed ...": crashkernel reserved and a capture kernel loaded
with that command line). A rebuilt kernel or initramfs never restores an
old state.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field

from kdebug.plan.plan import LaunchPlan

#: Bump when what a state holds or how it is taken changes.
KEY_VERSION = 1
#: The default cap on the disk the saved states use (KDEBUG_WARM_CAP_MB).
DEFAULT_CAP_MB = 2048


@dataclass(frozen=True)
class Fingerprint:
    """Everything a restored guest must share with the one that was saved."""

    image: str  # sha256 of the kernel image
    initrd: str  # sha256 of the initramfs ("" without one)
    firmware: str  # sha256 of -bios ("" for QEMU's default)
    cmdline: str
    memory_mb: int
    cpus: int
    machine: str
    accel: str
    qemu: str  # binary: resolved path, size, mtime
    devices: tuple[str, ...]
    stage: str

    def key(self) -> str:
        data = json.dumps([KEY_VERSION, asdict(self)], sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:20]


def devices(plan: LaunchPlan) -> tuple[str, ...]:
    """The plan's devices without the run's own host paths and ports."""
    out = [f"drive:{d.id}:{d.format}:{'ro' if d.readonly else 'rw'}" for d in plan.drives]
    out += [f"port:{s.name}:{s.kind}" for s in plan.serial_ports]
    out += ["pvpanic"] * plan.pvpanic + ["gdbstub"] * (plan.gdb_port is not None)
    out += ["interactive"] * plan.interactive + ["freeze"] * plan.freeze
    out += ["arg:" + _HOST_PATH.sub(r"\1=", a) for a in plan.extra_args]
    return tuple(out)


#: Host paths inside extra arguments (the shared RAM file of attach): the run's own.
_HOST_PATH = re.compile(r"\b((?:mem-)?path)=[^,]*")


def fingerprint(plan: LaunchPlan, digests: dict[str, str], qemu: str, stage: str) -> Fingerprint:
    """``digests``: sha256 by path (str) of the image, initrd and firmware."""
    return Fingerprint(
        image=digests[str(plan.image)],
        initrd=digests.get(str(plan.initrd), "") if plan.initrd else "",
        firmware=digests.get(str(plan.firmware), "") if plan.firmware else "",
        cmdline=plan.cmdline, memory_mb=plan.memory_mb, cpus=plan.cpus, machine=plan.machine,
        accel=plan.accel, qemu=qemu, devices=devices(plan), stage=stage)


@dataclass
class StateRecord:
    """record.json beside a saved state."""

    key: str
    saved: float  # epoch seconds
    stage: str
    qemu: str  # the fingerprint's binary identity
    qemu_version: str  # `qemu --version`'s first line
    machine: str
    image: str  # the kernel image's path when saved (to say which changed)
    image_digest: str
    release: str
    state_bytes: int  # the state file's apparent size
    kaslr_offset: int | None = None
    boot_seconds: float | None = None
    save_seconds: float | None = None
    used: float = 0.0  # last restore (epoch), for eviction
    uses: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StateRecord:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


def start_line(rec: StateRecord) -> str:
    """How capture.json and the report name a warm start."""
    return f"warm (state {rec.key}, saved {stamp(rec.saved)})"


def stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def refusal(rec: StateRecord, fp: Fingerprint, qemu_version: str, state_bytes: int | None) -> str | None:
    """Why this state must not be restored into ``fp``'s guest (None: it may).
    The key already matches; these catch a cache edited or copied by hand,
    a file cut short, a QEMU upgraded in place."""
    if state_bytes is None:
        return "its state file is missing"
    if state_bytes != rec.state_bytes:
        return f"its state file is {state_bytes} bytes, {rec.state_bytes} when saved (truncated?)"
    if rec.qemu_version != qemu_version or rec.qemu != fp.qemu:
        return f"it was saved by {rec.qemu_version or rec.qemu}, this is {qemu_version or fp.qemu}"
    if rec.machine != fp.machine:
        return f"it is for machine type {rec.machine}, this guest is {fp.machine}"
    if rec.image_digest != fp.image:
        return f"the kernel image {rec.image} changed since it was saved"
    return None


def changed_image(records: list[StateRecord], image: str, digest: str, stage: str) -> StateRecord | None:
    """A state saved for the same image path whose content has changed since
    (a rebuilt kernel): worth one line, as the key alone just misses."""
    for r in sorted(records, key=lambda r: r.saved, reverse=True):
        if r.image == image and r.image_digest != digest and r.stage.split()[0] == stage.split()[0]:
            return r
    return None
