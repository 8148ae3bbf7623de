from __future__ import annotations

from pathlib import Path

import click

from kdebug.cli.options import kernel_options, parse_adds, pass_kw
from kdebug.errors import UsageError
from kdebug.initramfs.build import build_ext4, build_initramfs
from kdebug.initramfs.recipe import list_recipes, load_recipe
from kdebug.kernel import find_kernel


@click.group()
def initramfs():
    """Build initramfs archives and root images from recipes (launch/initramfs)."""


@initramfs.command("list")
def list_cmd():
    """List the recipes."""
    for name in list_recipes():
        click.echo(f"{name:10} {load_recipe(name).description}")


@initramfs.command()
@click.argument("recipe")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Where to write it.")
@click.option("--format", "fmt", type=click.Choice(["cpio", "ext4"]), default="cpio", show_default=True)
@click.option("--size", default=256, show_default=True, help="ext4 image size in MiB.")
@click.option("--add", "adds", multiple=True, metavar="HOST[:GUEST]", help="Add a host file.")
@click.option("--module", "modules", multiple=True, help="Add a kernel module (and its deps).")
@kernel_options
@pass_kw
def build(kw):
    """Build RECIPE for the kernel (cpio newc + gzip, or an ext4 root image).

    Example: kdebug initramfs build busybox -o initrd.img --add ./repro:/bin/repro
    """
    recipe = load_recipe(kw["recipe"])
    kernel = find_kernel(kw["kernel"], kw["vmlinux"], kw["tree"], kw["release"])
    adds, mods = parse_adds(kw["adds"]), list(kw["modules"])
    if kw["fmt"] == "ext4":
        if not kw["output"]:
            raise UsageError("--format ext4 needs --output IMAGE")
        res = build_ext4(recipe, kernel, kw["output"], kw["size"], extra_files=adds, extra_modules=mods)
    else:
        res = build_initramfs(recipe, kernel, kw["output"], extra_files=adds, extra_modules=mods)
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)
    size = res.path.stat().st_size
    click.echo(f"{res.path} ({size / 1e6:.1f} MB, {len(res.files)} entries, kernel {kernel.release}"
               f"{', cached' if res.cached else ''})")


COMMANDS = [initramfs]
