"""kdebug bisect: the commit that brought a crash, found by the crash's title."""

from __future__ import annotations

import time
from pathlib import Path

import click

from kdebug.cli.options import launch_options, pass_kw, to_launch_options
from kdebug.errors import UsageError

_path = click.Path(path_type=Path)
#: Options kept in the state file for --resume (paths as strings there).
_PATHS = ("module_src", "src", "config", "kernel", "vmlinux", "tree", "initrd", "rootfs")
_NOT_KEPT = ("resume", "reset", "fmt", "output", "quiet")


@click.command("bisect")
@click.option("--module-src", type=_path, metavar="DIR",
              help="An out-of-tree module's git work tree: its history is bisected against a fixed kernel "
                   "(--release, --kernel, --tree).")
@click.option("--src", type=_path, metavar="DIR",
              help="A kernel's git work tree: its history is bisected, each commit built (incrementally, in a "
                   "worktree of kdebug's own) and booted.")
@click.option("--config", type=_path, metavar="FILE",
              help="With --src: the .config every commit is built with (make olddefconfig at each).")
@click.option("--preset", metavar="NAME", help="With --src: debug.config plus a preset's fragments (as kdebug "
              "kernel build).")
@click.option("--fragment", "fragments", multiple=True, metavar="FILE|NAME",
              help="With --src: kconfig fragments on tinyconfig (default: debug), made once at the bad end.")
@click.option("-j", "jobs", type=int, help="With --src: make's parallel jobs (default: all CPUs).")
@click.option("--good", multiple=True, metavar="REF", help="A commit without the crash (repeatable).")
@click.option("--bad", metavar="REF", help="A later commit with the crash.")
@click.option("--runs", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Boots per commit: a commit is good after this many clean runs; the first run that "
                   "shows the target makes it bad.")
@click.option("--signature", metavar="TEXT",
              help="The crash to look for: a piece of its title. Default: the bad end's first title.")
@click.option("--build", "build_cmd", metavar="CMD",
              help="Shell command that builds the tree (default: make -C <kernel build dir> M=<tree> modules).")
@click.option("--run", "run_cmd", metavar="CMD", help="The reproducer, run in the guest's shell.")
@click.option("--trigger", metavar="NAME", help="Or one of kdebug's triggers (see kdebug capture --help).")
@click.option("--setup", multiple=True, metavar="CMD", help="Guest shell command run after boot, before the run.")
@click.option("--panic-on", multiple=True, metavar="LIST",
              help="What else panics the guest, comma-separated (warn, hung, lockup, oom, none); "
                   "an Oops always does unless 'none'.")
@click.option("--panic-timeout", type=float, help="Seconds a run may take (default: per trigger; --run: 60).")
@click.option("--timeout", "boot_timeout", default=120.0, show_default=True, help="Seconds for each boot.")
@click.option("--dump", is_flag=True,
              help="Once found, capture one run of the first bad commit (QEMU dump) and write its report.")
@click.option("--resume", is_flag=True, help="Go on with the bisection under way (after Ctrl-C or a crash).")
@click.option("--reset", is_flag=True, help="Drop the bisection under way (its worktree and state).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True)
@click.option("-o", "--output", type=_path, help="Write the result to FILE.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@launch_options
@pass_kw
def bisect(kw):
    """Find the commit that brought a crash, by the crash's own title.

    Bisects a kernel's history (--src DIR: each commit built with kdebug's
    fragments or --config FILE, incrementally in one worktree, starting from
    a cached `kdebug kernel build` of one of its commits when there is one)
    or an out-of-tree module's history (--module-src DIR) against a fixed
    kernel (a relative --add path is a file the module's build makes).
    Each step builds the commit, boots the guest up to --runs times with the
    reproducer and reads the kernel's report on the console (no dump): bad
    when the target title appears, good after --runs clean runs, skip when
    the build fails or only another crash appears. The target is the bad
    end's first title, or --signature TEXT. Both ends are tested first.

    git's own bisection runs in a worktree in kdebug's cache: your work
    tree, index and branch stay exactly as they are, and `git -C WORKTREE
    bisect log` shows the steps. Exits 1 when the range cannot be bisected
    (the bad end does not crash, a good end does, every commit skipped).

    Examples: kdebug bisect --module-src ~/m --good v1.0 --bad HEAD --add m.ko:/m.ko --run 'insmod /m.ko' --runs 5

    kdebug bisect --src ~/linux --good v6.1 --bad HEAD --run 'cat /proc/version'
    """
    from kdebug.bisect import drive

    t0 = time.monotonic()
    quiet = kw["quiet"]

    def say(msg: str) -> None:
        if not quiet:
            click.echo(f"kdebug: [{time.monotonic() - t0:6.1f} s] {msg}", err=True)

    if kw["src"] is not None and kw["module_src"] is not None:
        raise UsageError("--src (a kernel's history) and --module-src (a module's) cannot be combined")
    source = kw["src"] or kw["module_src"] or Path(".")
    if kw["reset"]:
        click.echo(f"kdebug: {drive.reset(source)}", err=True)
        return
    fmt, output = kw["fmt"], kw["output"]
    try:
        if kw["resume"]:
            state = drive.resume(source, say)
            kw = _restore(state.data["options"])
            plan = _plan(kw)
        else:
            plan = _plan(kw)
            state = drive.start(plan, say)
        result = drive.run(plan, state, say)
    except KeyboardInterrupt:
        click.echo("kdebug: interrupted; the bisection is kept: `kdebug bisect --resume` goes on, "
                   "`--reset` drops it (your work tree is untouched)", err=True)
        raise click.exceptions.Exit(130) from None
    _write(_render(result, fmt), output)
    if not result.ok:
        click.echo(f"kdebug: error: not bisected: {result.message}", err=True)
        raise click.exceptions.Exit(1)


def _render(result, fmt: str) -> str:
    from kdebug.bisect.record import FORMATTERS

    return FORMATTERS[fmt](result)


def _write(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text)
    except OSError as e:
        raise UsageError(f"cannot write {output}: {e.strerror}") from None
    click.echo(f"kdebug: wrote {output}", err=True)


def _keep(kw: dict) -> dict:
    return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in kw.items() if k not in _NOT_KEPT}


def _restore(kept: dict) -> dict:
    kw = {k: (Path(v) if k in _PATHS and v is not None else tuple(v) if isinstance(v, list) else v)
          for k, v in kept.items()}
    if kw.get("drives"):
        kw["drives"] = tuple(Path(p) for p in kw["drives"])
    return kw


def _plan(kw: dict):
    from kdebug.bisect.drive import Plan
    from kdebug.bisect.runs import Reproducer
    from kdebug.capture.module import headers_dir
    from kdebug.capture.panicon import parse_panic_on
    from kdebug.capture.triggers import get_trigger
    from kdebug.kernel import find_kernel

    if kw["module_src"] is None and kw["src"] is None:
        raise UsageError("give --src DIR (a kernel's history) or --module-src DIR (a module's)")
    if kw["src"] is None and (kw["config"] or kw["preset"] or kw["fragments"]):
        raise UsageError("--config, --preset and --fragment configure a kernel history: they need --src")
    if not kw["bad"] or not kw["good"]:
        raise UsageError("give the range: --bad REF and at least one --good REF")
    if kw["run_cmd"] is None and kw["trigger"] is None:
        raise UsageError("give the reproducer: --run CMD (with --add m.ko:/m.ko) or --trigger NAME")
    fixed, outputs = [], {}
    for a in kw["adds"]:
        host, _, guest = a.partition(":")
        if host and not Path(host).is_absolute():
            outputs[guest or host] = Path(host)
        else:
            fixed.append(a)
    if kw["src"] is not None:
        return _kernel_plan(kw, list(kw["adds"]))
    if not outputs and not kw["build_cmd"]:
        raise UsageError("nothing to take from the build: add what it makes with a relative --add, "
                         "e.g. --add m.ko:/m.ko")
    kept = _keep(kw)
    lkw = dict(kw, adds=tuple(fixed))
    lopts = to_launch_options(lkw)
    kernel = find_kernel(lopts.kernel, lopts.vmlinux, lopts.tree, lopts.release)
    trigger = get_trigger(kw["trigger"] or "sysrq", kw["run_cmd"])
    panic_on = parse_panic_on(kw["panic_on"] or None)
    rep = Reproducer(lopts, trigger, tuple(kw["setup"]), panic_on, kw["boot_timeout"], kw["panic_timeout"])
    return Plan(kw["module_src"], list(kw["good"]), kw["bad"], rep, kernel, outputs,
                None if kw["build_cmd"] else headers_dir(kernel), kw["build_cmd"], kw["runs"],
                kw["signature"], kw["dump"], kept)


def _kernel_plan(kw: dict, adds: list[str]):
    from kdebug.bisect.drive import Plan
    from kdebug.bisect.ktree import KernelConfig
    from kdebug.bisect.runs import Reproducer
    from kdebug.capture.panicon import parse_panic_on
    from kdebug.capture.triggers import get_trigger
    from kdebug.kbuild import DEFAULT_FRAGMENT, fragment_path, preset_fragments

    if kw["tree"] or kw["kernel"] or kw["vmlinux"] or kw["release"]:
        raise UsageError("--src boots each commit's own build: --tree, --kernel, --vmlinux and --release "
                         "do not apply")
    if kw["build_cmd"]:
        raise UsageError("--build is for --module-src; a kernel history is built with make")
    if kw["config"] and (kw["preset"] or kw["fragments"]):
        raise UsageError("--config FILE is the whole configuration: no --preset or --fragment with it")
    extra = tuple(fragment_path(f) for f in kw["fragments"])
    frags = (*preset_fragments(kw["preset"]), *extra) if kw["preset"] else extra or (DEFAULT_FRAGMENT,)
    cfg = KernelConfig(() if kw["config"] else frags, kw["config"])
    cfg.check()
    kept = _keep(kw)
    lopts = to_launch_options(dict(kw, adds=tuple(adds)))
    trigger = get_trigger(kw["trigger"] or "sysrq", kw["run_cmd"])
    rep = Reproducer(lopts, trigger, tuple(kw["setup"]), parse_panic_on(kw["panic_on"] or None),
                     kw["boot_timeout"], kw["panic_timeout"])
    return Plan(kw["src"], list(kw["good"]), kw["bad"], rep, None, {}, None, None, kw["runs"],
                kw["signature"], kw["dump"], kept, kernel_config=cfg, jobs=kw["jobs"])


COMMANDS = [bisect]
