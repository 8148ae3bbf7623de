"""What a capture will do, decided before QEMU starts (pure).

The options, the output directory, the capture kernel's command line, and
the stage clock every driver records its steps with.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.capture import panicon
from kdebug.capture.outfaults import capture_error
from kdebug.capture.record import Capture, Stage
from kdebug.errors import CaptureError, KdebugError, OutputError, UsageError
from kdebug.output import check_writable, is_fault, output_error
from kdebug.vmcore.filter import LevelChoice, choose_level, kernel_exports_file, tool_reads

METHODS = ("kdump", "qemu", "auto")
COMPRESSIONS = ("lzo", "zlib", "none")
VIAS = ("serial", "disk")
DUMP_PORT = "org.kdebug.dump"
#: Settings the capture kernel needs (Documentation/admin-guide/kdump/kdump.rst):
#: one CPU, devices reset, interrupts polled; kexec adds elfcorehdr=. And one
#: that only saves time:
CAPTURE_ARGS = ("irqpoll", "nr_cpus=1", "reset_devices", "pty.legacy_count=0")
# pty.legacy_count=0: a kernel built with CONFIG_LEGACY_PTYS registers 256 BSD
# pty pairs at boot (drivers/tty/pty.c), 0.34 s of kdebug's capture kernel's
# boot under TCG (initcall_debug: pty_init 357 ms, 19 ms with it); nothing in a
# capture opens one. A kernel without the option ignores the parameter.
#: Modaliases of the devices a capture adds for its capture kernel alone:
#: QEMU's virtio-serial-pci (the dump port) and virtio-blk-pci (--via disk),
#: by their transitional and modern PCI device IDs, and the virtio device
#: behind each (include/uapi/linux/virtio_ids.h: 3 console, 2 block). The
#: first kernel's /init loads no driver for them (capture_devices_arg): under
#: TCG the six virtio modules and the probe took ~0.7 s of the first boot.
DUMP_PORT_DEVICES = ("pci:v00001AF4d00001003*", "pci:v00001AF4d00001043*", "virtio:d00000003v*")
DUMP_DISK_DEVICES = ("pci:v00001AF4d00001001*", "pci:v00001AF4d00001042*", "virtio:d00000002v*")


def capture_devices_arg(patterns: tuple[str, ...] | list[str]) -> str | None:
    """The first kernel's ``kdebug.capture_devices=``: /init leaves devices
    matching these globs without a driver (the capture kernel's command line
    drops every kdebug. argument, so it drives them)."""
    return f"kdebug.capture_devices={','.join(patterns)}" if patterns else None


#: Provoke the capture-kernel OOM for real: skips the 80M floor (tests only).
UNSAFE_CRASHKERNEL_ENV = "KDEBUG_UNSAFE_CRASHKERNEL"


@dataclass
class Timeouts:
    boot: float = 120.0
    kexec: float = 60.0
    panic: float | None = None  # None: the trigger's own
    capture_boot: float = 120.0
    dump: float = 300.0
    drain: float = 15.0  # host file catching up after the guest says done


@dataclass
class CaptureOptions:
    method: str = "kdump"
    trigger: str = "sysrq"
    run: str | None = None  # a user reproducer instead of a trigger
    dump_level: int | None = None  # makedumpfile -d; None: the safe level for the kernel and binary
    compression: str = "lzo"
    raw: bool = False  # unfiltered ELF (cat /proc/vmcore)
    via: str = "serial"  # "disk": a file on an ext4 disk image, read back with debugfs
    out: Path | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    setup: tuple[str, ...] = ()  # guest shell lines run after boot, before kexec -p
    skip_kexec: bool = False  # fault injection: panic with no capture kernel loaded
    #: What panics besides the trigger's own (kdebug.capture.panicon); () is --panic-on none.
    panic_on: tuple[str, ...] = panicon.DEFAULT
    #: kdump's capture kernel: "auto", "crashed" or a build tree (kdebug.capture.capture_kernel).
    capture_kernel: str = "auto"
    #: Restore a guest saved armed (kdebug.warm) when one matches, else save one
    #: (the CLI's default; library callers ask for it).
    warm: bool = False
    reseed: bool = False  # fresh host randomness into a restored guest's RNG
    #: Called with (vmcore, vmlinux) once the dump is whole and named vmcore, before
    #: drgn's check of it: crash-loop starts crash there, beside the rest of the capture.
    on_vmcore: Callable[[Path, Path | None], None] | None = None

    def validate(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"unknown method {self.method!r}", hint="kdump, qemu or auto")
        if self.dump_level is not None and not 0 <= self.dump_level <= 31:
            raise UsageError(f"--dump-level {self.dump_level} is out of range (0-31)")
        if self.via not in VIAS:
            raise UsageError(f"unknown --via {self.via!r}", hint="serial or disk")
        if self.compression not in COMPRESSIONS:
            raise UsageError(f"unknown compression {self.compression!r}", hint=", ".join(COMPRESSIONS))
        self.panic_on = panicon.parse_panic_on(self.panic_on) if self.panic_on else ()


def make_out_dir(out: Path | None, prefix: str = "capture") -> Path:
    """A new private directory: ``out`` itself, or a fresh one under the cwd."""
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path.cwd() / f"kdebug-{prefix}-{stamp}"
        n = 1
        while out.exists():
            n += 1
            out = Path.cwd() / f"kdebug-{prefix}-{stamp}-{n}"
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {out} exists and is not a directory")
        clash = [n for n in ("vmcore", "vmcore.partial", "capture.json") if (out / n).exists()]
        if clash:
            raise UsageError(f"--out {out} already holds {', '.join(clash)}",
                             hint="pick a new directory")
    else:
        try:
            # exist_ok: two commands given the same new --out; claim_dir lets one in.
            out.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            if not is_fault(e):
                raise
            raise output_error(e, Path(e.filename or out).parent, what=f"the directory {out.name}") from None
    check_writable(out, what="the capture")
    return out


def capture_cmdline(cmdline: str, *, raw: bool, dump_level: int | None, compression: str,
                    disk: str | None = None) -> str:
    """The capture kernel's command line: the first kernel's, minus
    crashkernel= (nothing to reserve there), plus the kdump settings and
    what kdebug's capture hook reads."""
    keep = [a for a in cmdline.split() if not a.startswith(("crashkernel=", "kdebug."))
            and a not in CAPTURE_ARGS]
    mode = ["kdebug.dump=elf"] if raw else [
        "kdebug.dump=flat", f"kdebug.level={dump_level}", f"kdebug.comp={compression}"]
    if disk:
        mode.append(f"kdebug.disk={disk}")
    return " ".join([*keep, *CAPTURE_ARGS, *mode])


def choose_dump_level(requested: int | None, kernel, makedumpfile: Path | None) -> LevelChoice:
    """The makedumpfile -d level for this kernel (a kdebug.kernel.Kernel) and
    the makedumpfile binary the capture initramfs carries, with the reason."""
    exports = kernel_exports_file(kernel.vmlinux, kernel.image)
    reads = tool_reads(makedumpfile) if makedumpfile is not None else None
    return choose_level(requested, exports, reads, str(makedumpfile or "makedumpfile"))


def disk_name(index: int) -> str:
    """Guest name of the ``index``-th virtio disk (vda, vdb, ...), in argv order."""
    if not 0 <= index < 26:
        raise UsageError("too many disks for --via disk")
    return "vd" + chr(ord("a") + index)


REQUIRED_CONFIG = ("KEXEC", "CRASH_DUMP", "PROC_VMCORE")


def preflight(kernel) -> None:
    """Refuse a kernel that cannot kdump before booting it, when its
    configuration is known (``kernel``: a kdebug.kernel.Kernel)."""
    cfg = kernel.config
    if not cfg or not cfg.values:
        return
    missing = [o for o in REQUIRED_CONFIG if not cfg.enabled(o)]
    if "KEXEC" in missing and cfg.enabled("KEXEC_FILE"):
        missing.remove("KEXEC")  # kexec -s is enough
    if missing:
        raise CaptureError(f"kernel {kernel.release} cannot kdump: CONFIG_{', CONFIG_'.join(missing)} "
                           "not set", hint="use --method qemu, or a kernel built with them")


def unsafe_crashkernel() -> str | None:
    return os.environ.get(UNSAFE_CRASHKERNEL_ENV) or None


class StageClock:
    """Records each stage's time and outcome on a :class:`Capture`."""

    def __init__(self, cap: Capture) -> None:
        self.cap = cap
        self.t0 = time.monotonic()

    @contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        st = Stage(name, 0.0)
        t = time.monotonic()
        try:
            yield st
        except (KdebugError, OSError) as e:
            if isinstance(e, OSError):
                if not is_fault(e):
                    raise
                # A write fault in the stage (disk full, read-only, removed): one line.
                e = output_error(e, self.cap.directory, what=Path(e.filename).name if e.filename else name)
            st.seconds = time.monotonic() - t
            st.ok = False
            st.detail = e.message
            self.cap.stages.append(st)
            self.cap.failed_stage = name
            diags = getattr(e, "diagnoses", [])
            self.cap.error = {"message": e.message, "hint": e.hint,
                              "diagnoses": [d.__dict__ for d in diags]}
            if isinstance(e, OutputError):
                e = capture_error(e)
                self.cap.error["diagnoses"] = [d.__dict__ for d in e.diagnoses]
            if isinstance(e, CaptureError):
                e.failed_stage = name
                e.directory = self.cap.directory
                raise e from None
            raise CaptureError(f"{name}: {e.message}", hint=e.hint, stage=name,
                               diagnoses=diags, directory=self.cap.directory) from e
        st.seconds = time.monotonic() - t
        self.cap.stages.append(st)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0
