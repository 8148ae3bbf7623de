"""Option groups shared by commands, as stacked decorators."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from kdebug.errors import UsageError
from kdebug.plan.prepare import LaunchOptions

_path = click.Path(path_type=Path)


def kernel_options(f):
    f = click.option("--release", metavar="REL",
                     help="An installed distro kernel by release or prefix (e.g. 6.12); also KDEBUG_KERNEL. "
                     "Default: the distribution's own kernel generation.")(f)
    f = click.option("--tree", type=_path, help="Kernel build tree (bzImage, vmlinux, .config).")(f)
    f = click.option("--vmlinux", type=_path, help="Debug ELF vmlinux matching --kernel.")(f)
    f = click.option("--kernel", type=_path,
                     help="Bootable kernel image (bzImage), with --vmlinux.")(f)
    return f


def launch_options(f):
    opts = [
        click.option("--initrd", type=_path, help="Use this initramfs instead of building a recipe."),
        click.option("--recipe", default="busybox", show_default=True, help="Initramfs recipe."),
        click.option("--memory", "-m", help="Guest memory (e.g. 1G). Default from the profile."),
        click.option("--cpus", type=int, help="Guest CPUs. Default from the profile."),
        click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto",
                     show_default=True, help="auto uses KVM only where it really works."),
        click.option("--crashkernel", help="Reserve memory for a capture kernel (e.g. 128M)."),
        click.option("--nokaslr", is_flag=True, help="Boot with KASLR off."),
        click.option("--gdb-port", type=int, help="gdbstub port on 127.0.0.1 (default: a free one)."),
        click.option("--append", multiple=True, help="Extra kernel command line arguments."),
        click.option("--rootfs", type=_path, help="ext4 image to boot as root=/dev/vda."),
        click.option("--drive", "drives", type=_path, multiple=True, help="Extra raw disk image."),
        click.option("--add", "adds", multiple=True, metavar="HOST[:GUEST]",
                     help="Add a host file to the initramfs."),
        click.option("--module", "modules", multiple=True, help="Add a kernel module (and its deps)."),
        click.option("--profile", default="default", show_default=True, help="QEMU profile."),
    ]
    for o in reversed(opts):
        f = o(f)
    return kernel_options(f)


def warm_options(f):
    """--cold / --reseed: how a guest starts (kdebug.warm)."""
    f = click.option("--reseed", is_flag=True,
                     help="After a warm start, mix fresh host randomness into the guest's RNG "
                          "(every warm start of one saved state otherwise shares its random state).")(f)
    f = click.option("--cold", is_flag=True,
                     help="Boot the kernel instead of restoring a saved guest (and save none).")(f)
    return f


def parse_adds(adds: tuple[str, ...]) -> dict[str, Path]:
    out = {}
    for a in adds:
        host, _, guest = a.partition(":")
        if not host:
            raise UsageError(f"bad --add {a!r}: use HOST[:GUEST]")
        out[guest or host] = Path(host)
    return out


def to_launch_options(kw: dict, **extra) -> LaunchOptions:
    return LaunchOptions(
        kernel=kw.get("kernel"), vmlinux=kw.get("vmlinux"), tree=kw.get("tree"), release=kw.get("release"),
        initrd=kw.get("initrd"), recipe=kw.get("recipe") or "busybox", profile=kw.get("profile") or "default",
        memory=kw.get("memory"), cpus=kw.get("cpus"), accel=kw.get("accel") or "auto",
        crashkernel=kw.get("crashkernel"), nokaslr=bool(kw.get("nokaslr")),
        gdb_port=kw.get("gdb_port"), append=list(kw.get("append") or ()),
        rootfs=kw.get("rootfs"), drives=list(kw.get("drives") or ()),
        extra_files=parse_adds(kw.get("adds") or ()), extra_modules=list(kw.get("modules") or ()),
        **extra,
    )


def _panic_on(ctx, param, value):
    from kdebug.capture.panicon import parse_panic_on

    return parse_panic_on(value) if value else None


def capture_options(default_method: str):
    """How to crash the guest and bring the dump home: the same options on
    `kdebug capture` and `kdebug crash-loop` (only --method's default differs)."""
    from kdebug.capture.panicon import WORDS
    from kdebug.capture.plan import COMPRESSIONS, METHODS
    from kdebug.capture.triggers import TRIGGERS

    opts = [
        click.option("--method", type=click.Choice(METHODS), default=default_method, show_default=True,
                     help="kdump (kexec a capture kernel), qemu (pvpanic + QMP dump), auto (kdump, else "
                          "the QEMU dump; also of a guest that complained without panicking)."),
        click.option("--trigger", type=click.Choice(list(TRIGGERS)), default="sysrq", show_default=True,
                     help="How to crash the guest."),
        click.option("--run", "run_cmd", metavar="CMD",
                     help="Run this reproducer in the guest instead of a trigger (files: --add HOST:GUEST)."),
        click.option("--setup", multiple=True, metavar="CMD",
                     help="Guest shell command run after boot, before the capture kernel is loaded."),
        click.option("--panic-on", multiple=True, metavar="LIST", callback=_panic_on,
                     help=f"What else panics the guest (so it is captured), comma-separated: "
                          f"{', '.join(WORDS)}. An Oops always does unless 'none'."),
        click.option("--panic-timeout", type=float,
                     help="Seconds from trigger to panic (default: per trigger; --run: 60)."),
        click.option("--dump-level", "-d", type=click.IntRange(0, 31), default=None,
                     help="makedumpfile -d: pages to leave out. Default: 31 (all but kernel data) less "
                          "what this makedumpfile cannot filter safely on this kernel."),
        click.option("--compress", type=click.Choice(COMPRESSIONS), default="lzo", show_default=True,
                     help="Page compression of the kdump-compressed vmcore."),
        click.option("--via", type=click.Choice(["serial", "disk"]), default="serial", show_default=True,
                     help="serial: stream over a virtio-serial port; disk: write the vmcore file on an "
                          "ext4 disk image, read back with debugfs without mounting."),
        click.option("--raw", is_flag=True, help="Unfiltered ELF vmcore (cat /proc/vmcore): large, slower."),
        click.option("--capture-kernel", default="auto", show_default=True, metavar="auto|crashed|TREE",
                     help="kdump's capture kernel: auto (the smallest suitable `kdebug kernel build` tree "
                          "in the cache, else the crashed kernel), crashed, or a build tree."),
        click.option("--timeout", default=120.0, show_default=True, help="Seconds for the first boot."),
        click.option("--capture-timeout", default=120.0, show_default=True,
                     help="Seconds for the capture kernel to start dumping."),
        click.option("--dump-timeout", default=300.0, show_default=True, help="Seconds for the dump itself."),
    ]

    def deco(f):
        for o in reversed(opts):
            f = o(f)
        # kdump over the serial route starts armed from a saved guest (kdebug.warm)
        return warm_options(f)

    return deco


def to_capture_options(kw: dict, out: Path | None):
    """Pop the :func:`capture_options` from ``kw``; the rest are launch options.
    kdump needs memory reserved for its capture kernel: crashkernel= unless given."""
    from kdebug.capture.panicon import DEFAULT
    from kdebug.capture.plan import CaptureOptions, Timeouts

    panic_on = kw.pop("panic_on")
    opts = CaptureOptions(
        method=kw.pop("method"), trigger=kw.pop("trigger"), run=kw.pop("run_cmd"),
        dump_level=kw.pop("dump_level"), compression=kw.pop("compress"), raw=kw.pop("raw"),
        via=kw.pop("via"), out=out, setup=tuple(kw.pop("setup")), capture_kernel=kw.pop("capture_kernel"),
        warm=not kw.pop("cold", False), reseed=kw.pop("reseed", False),
        panic_on=DEFAULT if panic_on is None else panic_on,
        timeouts=Timeouts(boot=kw.pop("timeout"), panic=kw.pop("panic_timeout"),
                          capture_boot=kw.pop("capture_timeout"), dump=kw.pop("dump_timeout")))
    if opts.method != "qemu" and not kw.get("crashkernel"):
        kw["crashkernel"] = "auto"
    return opts


def session_options(f):
    """--session NAME / --last: a running guest, the same on every command."""
    f = click.option("--last", is_flag=True, help="The most recently started running guest.")(f)
    f = click.option("--session", "session_name", metavar="NAME",
                     help="A running guest by name (`kdebug sessions` lists them).")(f)
    return f


def pass_kw(f):
    """Hand all options to the command as one dict (keeps commands short)."""
    @functools.wraps(f)
    def wrapper(**kw):
        return f(kw)
    return wrapper
