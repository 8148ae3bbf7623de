"""From user options to a plan and a running guest: the foundation every
command (run, boot, attach, capture) boots through."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.errors import ToolMissing, UsageError
from kdebug.initramfs.build import Initramfs, build_initramfs
from kdebug.initramfs.recipe import load_recipe
from kdebug.kernel import Kernel, find_kernel
from kdebug.plan.accel import AccelChoice, choose_accel
from kdebug.plan.cmdline import CRASHKERNEL_DEFAULT, build_cmdline, check_crashkernel
from kdebug.plan.plan import Drive, LaunchPlan, SerialPort
from kdebug.plan.ports import check_port, free_port
from kdebug.plan.profile import find_firmware, load_profile, parse_size_mb
from kdebug.session import Session

QEMU = "qemu-system-x86_64"
#: Console loglevel of a guest kdebug drives: KERN_EMERG only (panics, oopses
#: under console_verbose(), kdebug's own markers); dmesg keeps the rest.
DRIVEN_CONSOLE_LOGLEVEL = 1


@dataclass
class LaunchOptions:
    kernel: Path | None = None
    vmlinux: Path | None = None
    tree: Path | None = None
    release: str | None = None  # an installed distro kernel by release (or prefix)
    initrd: Path | None = None  # a ready-made initramfs instead of a recipe
    recipe: str = "busybox"
    profile: str = "default"
    memory: str | None = None
    cpus: int | None = None
    accel: str = "auto"
    crashkernel: str | None = None  # "auto" -> the default size
    nokaslr: bool = False
    freeze: bool = False
    gdb_port: int | None = None  # None: a free port; 0: no gdbstub
    append: list[str] = field(default_factory=list)
    rootfs: Path | None = None  # ext4 image for root=/dev/vda
    drives: list[Path] = field(default_factory=list)
    serial_ports: list[SerialPort] = field(default_factory=list)
    pvpanic: bool = False
    interactive: bool = False
    extra_files: dict[str, Path] = field(default_factory=dict)
    extra_modules: list[str] = field(default_factory=list)
    #: The image kexec -p loads when crashkernel= is reserved (None: the booted kernel).
    capture_image: Path | None = None


@dataclass
class Prepared:
    kernel: Kernel
    initramfs: Initramfs | None
    accel: AccelChoice
    plan: LaunchPlan


def prepare(opts: LaunchOptions, session: Session | None, *, resolve_kernel=find_kernel) -> Prepared:
    """Resolve kernel, initramfs, accelerator and ports into a plan."""
    if shutil.which(QEMU) is None:
        raise ToolMissing(f"{QEMU} not found", hint="apt-get install qemu-system-x86 (scripts/setup.sh)")
    kernel = resolve_kernel(opts.kernel, opts.vmlinux, opts.tree, opts.release)
    profile = load_profile(opts.profile)
    memory = parse_size_mb(opts.memory, "memory") if opts.memory else profile.memory_mb
    if memory < 128:
        raise UsageError(f"--memory {opts.memory} is too small to boot a kernel (use 256M or more)")
    cpus = opts.cpus or profile.cpus
    if cpus < 1 or cpus > 64:
        raise UsageError(f"--cpus {cpus} is out of range (1-64)")
    crash = None
    if opts.crashkernel:
        crash = CRASHKERNEL_DEFAULT if opts.crashkernel == "auto" else opts.crashkernel
        check_crashkernel(crash, memory)
    initramfs = None
    initrd = opts.initrd
    if initrd is not None:
        if not initrd.is_file():
            raise UsageError(f"initrd {initrd} does not exist")
    elif opts.recipe:
        # The capture kernel rides along only where a crashkernel= region can take it
        # (also one put on the command line past check_crashkernel's floor, by fault tests).
        reserved = crash is not None or any(a.startswith("crashkernel=") for a in opts.append)
        initramfs = build_initramfs(load_recipe(opts.recipe), kernel, extra_files=opts.extra_files,
                                    extra_modules=opts.extra_modules, kdump=reserved,
                                    capture_image=opts.capture_image)
        initrd = initramfs.path
    drives = [Drive(p, f"disk{i}") for i, p in enumerate(opts.drives)]
    root = None
    if opts.rootfs is not None:
        if not opts.rootfs.is_file():
            raise UsageError(f"root image {opts.rootfs} does not exist")
        drives.insert(0, Drive(opts.rootfs, "root"))
        root = "/dev/vda"
    for d in drives:
        if not d.path.is_file():
            raise UsageError(f"disk image {d.path} does not exist")
    # kdebug drives the shell of every guest but an interactive one: kdebug's
    # /init then quiets the console before its ready marker (busybox-init.sh),
    # and every console record carries its timestamp, which is how the driver
    # tells records from a command's output (kdebug.guest.console) on a
    # kernel built without CONFIG_PRINTK_TIME too.
    driven = () if opts.interactive else ("printk.time=1", f"kdebug.loglevel={DRIVEN_CONSOLE_LOGLEVEL}")
    cmdline = build_cmdline(profile.cmdline, crashkernel=crash, nokaslr=opts.nokaslr, root=root,
                            extra=[*driven, *opts.append])
    accel = choose_accel(opts.accel)
    if opts.gdb_port is None:
        port = free_port()
    elif opts.gdb_port == 0:
        port = None
    else:
        check_port(opts.gdb_port)
        port = opts.gdb_port
    plan = LaunchPlan(
        name=f"kdebug-{session.name}" if session else "kdebug",
        qemu=QEMU,
        image=kernel.image,
        initrd=initrd,
        cmdline=cmdline,
        memory_mb=memory,
        cpus=cpus,
        machine=profile.machine,
        firmware=find_firmware(profile.firmware, shutil.which(QEMU)),
        accel=accel.name,
        accel_fallback=opts.accel == "auto" and accel.name == "kvm",
        gdb_port=port,
        qmp_socket=session.qmp_socket if session else Path("SESSION/qmp.sock"),
        console_log=session.console_log if session else Path("SESSION/console.log"),
        interactive=opts.interactive,
        freeze=opts.freeze,
        drives=tuple(drives),
        serial_ports=tuple(opts.serial_ports),
        pvpanic=opts.pvpanic,
    )
    if session is not None:
        session.kernel = kernel.to_dict()
        session.initrd = str(initrd) if initrd else None
    return Prepared(kernel, initramfs, accel, plan)
