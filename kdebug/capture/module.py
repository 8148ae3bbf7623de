"""Build the trigger module (launch/triggers/kdebug_trigger.c) or the splat
module (kdebug_splat.c: the kernel's own bug reports, for the crash-taxonomy
tests) for a kernel.

Distribution kernels have no LKDTM. The module is built with the kernel's
own Kbuild (``/lib/modules/<release>/build``: the linux-headers package, or
a build tree) and cached by the source, the release and the build-id, so a
second capture costs nothing. Loading it taints the kernel (O, and E since
it is unsigned): capture.json says so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from kdebug.errors import CaptureError, ToolMissing
from kdebug.kernel import Kernel
from kdebug.paths import cache_dir
from kdebug.resources import launch_path

SOURCE_DIR = launch_path("triggers")
FILES = ("kdebug_trigger.c", "Kbuild")
TAINT = "kdebug_trigger.ko loaded (out-of-tree, unsigned: taint O and E)"
#: kdebug_splat.ko's source; its Kbuild is written beside it at build time.
SPLAT = "kdebug_splat"


def headers_dir(kernel: Kernel) -> Path:
    build = Path(f"/lib/modules/{kernel.release}/build")
    for d in (kernel.tree, build):
        if d is not None and (d / "Makefile").is_file():
            return d
    package = f"linux-headers-{kernel.release}"
    if _packaged(kernel.image):
        raise ToolMissing(f"no kernel headers for {kernel.release} ({build} is missing) to build the trigger "
                          f"module: install {package}", hint=f"apt-get install {package}")
    raise ToolMissing(f"no kernel headers for {kernel.release} ({build} is missing) to build the trigger "
                      f"module, and {kernel.image} is not from a Debian package",
                      hint="boot its build tree with --tree DIR, which builds the module against it")


def _packaged(path: Path) -> bool:
    """Whether dpkg owns ``path`` (so linux-headers-<release> exists beside it)."""
    try:
        r = subprocess.run(["dpkg-query", "-S", str(path.resolve())], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def trigger_module(kernel: Kernel) -> Path:
    """Path of kdebug_trigger.ko for ``kernel``, built once and cached."""
    sources = {name: (SOURCE_DIR / name).read_bytes() for name in FILES}
    return _module(kernel, "kdebug_trigger", sources)


def splat_module(kernel: Kernel) -> Path:
    """Path of kdebug_splat.ko for ``kernel`` (``insmod kdebug_splat.ko
    class=uaf`` and the other classes in its source), built once and cached."""
    sources = {f"{SPLAT}.c": (SOURCE_DIR / f"{SPLAT}.c").read_bytes(), "Kbuild": f"obj-m := {SPLAT}.o\n".encode()}
    return _module(kernel, SPLAT, sources)


def _module(kernel: Kernel, name: str, sources: dict[str, bytes]) -> Path:
    cfg = kernel.config
    if cfg and cfg.values and not cfg.enabled("MODULES"):
        raise CaptureError(f"kernel {kernel.release} cannot load modules (CONFIG_MODULES is not set), "
                           f"and this needs {name}.ko", stage="module",
                           hint="use --trigger sysrq or nmi, or --run with your own reproducer")
    build = headers_dir(kernel)
    h = hashlib.sha256()
    for data in sources.values():
        h.update(data)
    h.update(f"{kernel.release}\0{kernel.build_id}\0{build.resolve()}".encode())
    out = cache_dir("triggers") / f"{name}-{kernel.release}-{h.hexdigest()[:16]}.ko"
    if out.is_file():
        return out
    if not shutil.which("make"):
        raise ToolMissing("make not found", hint="apt-get install make gcc")
    if kernel.tree is not None and build == kernel.tree:
        _modules_prepare(build)
    with tempfile.TemporaryDirectory(prefix="kdebug-trigger-") as tmp:
        for file, data in sources.items():
            (Path(tmp) / file).write_bytes(data)
        try:
            r = subprocess.run(["make", "-C", str(build), f"M={tmp}", "modules"],
                               capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise CaptureError(f"building {name}.ko took over 300 s", stage="module") from None
        ko = Path(tmp) / f"{name}.ko"
        if r.returncode != 0 or not ko.is_file():
            last = (r.stderr or r.stdout).strip().splitlines()[-3:]
            raise CaptureError(f"building {name}.ko against {build} failed: {' | '.join(last)}",
                               stage="module", hint="check gcc and the headers match the kernel")
        part = out.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(ko, part)
        part.replace(out)
    return out


def _modules_prepare(tree: Path) -> None:
    """A tree built with only ``make bzImage`` (or ``kdebug kernel build``)
    lacks the linker script external modules are linked with; ``make
    modules_prepare`` adds it (about 2 s with the tree built)."""
    if (tree / "scripts" / "module.lds").is_file():
        return
    try:
        r = subprocess.run(["make", "-C", str(tree), "modules_prepare"], capture_output=True, text=True,
                           timeout=300)
    except subprocess.TimeoutExpired:
        raise CaptureError(f"make modules_prepare in {tree} took over 300 s", stage="module") from None
    if r.returncode != 0:
        last = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise CaptureError(f"make modules_prepare in {tree} failed: {' | '.join(last)}", stage="module")
