"""The launch plan: everything that decides a QEMU command line, as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Drive:
    path: Path
    id: str
    format: str = "raw"
    readonly: bool = False


@dataclass(frozen=True)
class SerialPort:
    """A virtio-serial port; the guest sees /dev/vport*p* (and /sys/.../name)."""

    name: str  # e.g. org.kdebug.dump
    path: Path  # host side: a file QEMU writes (chardev file) or a unix socket
    kind: str = "file"  # "file" or "socket"


@dataclass(frozen=True)
class LaunchPlan:
    name: str
    image: Path
    initrd: Path | None
    cmdline: str
    memory_mb: int = 1024
    cpus: int = 2
    machine: str = "pc"
    firmware: Path | None = None  # -bios; None: QEMU's default (SeaBIOS)
    accel: str = "tcg"
    accel_fallback: bool = False  # KVM chosen by "auto": retry under TCG if it stays silent
    qemu: str = "qemu-system-x86_64"
    gdb_port: int | None = None  # gdbstub on 127.0.0.1 only
    qmp_socket: Path | None = None
    console_log: Path | None = None
    interactive: bool = False  # console on the user's terminal (Ctrl-A x quits)
    freeze: bool = False  # -S: stop at the first instruction
    drives: tuple[Drive, ...] = ()
    serial_ports: tuple[SerialPort, ...] = ()
    pvpanic: bool = False  # panic -> QMP GUEST_PANICKED and pause, for QEMU dumps
    #: -incoming defer: wait for a saved state (QMP migrate-incoming) instead of booting
    incoming: bool = False
    extra_args: tuple[str, ...] = field(default_factory=tuple)
