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
