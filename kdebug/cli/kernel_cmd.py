"""kdebug kernel build."""

from __future__ import annotations

from pathlib import Path

import click

_path = click.Path(path_type=Path)


@click.group()
def kernel():
    """Build kernels to debug."""


@kernel.command("build")
@click.option("--src", type=_path, default=Path("/usr/src/linux-source-6.1.tar.xz"), show_default=True,
              help="Kernel source directory or tarball.")
@click.option("--preset", metavar="NAME",
              help="debug.config plus a shipped set of fragments: kasan, kfence, ubsan, lockdep, sanitizers "
                   "(all of them); --fragment adds more after it.")
@click.option("--fragment", "fragments", multiple=True,
              help="kconfig fragment: a file or a shipped name (debug, modules, kasan, ...); repeat to layer "
                   "them, later ones winning (default: debug).")
@click.option("--base", type=click.Choice(["tinyconfig", "defconfig"]), default="tinyconfig", show_default=True)
@click.option("-j", "jobs", type=int, help="Parallel jobs (default: all CPUs).")
def kernel_build(src, preset, fragments, base, jobs):
    """Configure and build bzImage, vmlinux and scripts_gdb (and the modules,
    when the configuration has any); print the tree.

    Cached by source and fragments: a second run returns at once. Use the
    printed directory with --tree, e.g. `kdebug attach --tree DIR`.

    Example: kdebug kernel build --preset sanitizers --fragment modules
    """
    from kdebug.kbuild import DEFAULT_FRAGMENT, build_kernel, fragment_path, preset_fragments

    extra = [fragment_path(f) for f in fragments]
    frags = [*preset_fragments(preset), *extra] if preset else extra or [DEFAULT_FRAGMENT]
    res = build_kernel(src, frags, base=base, jobs=jobs,
                       progress=lambda m: click.echo(f"kdebug: {m}", err=True))
    for opt in res.missing:
        click.echo(f"kdebug: warning: {opt} from the fragment is not in the final .config", err=True)
    click.echo(f"kdebug: {'cached' if res.cached else f'built in {res.seconds:.0f} s'}", err=True)
    click.echo(str(res.tree))


COMMANDS = [kernel]
