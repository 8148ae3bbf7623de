"""Assemble a recipe into an initramfs (cpio newc, gzip) or an ext4 image.

Host files are gathered here (busybox, binaries with their ``ldd`` closure,
modules from ``modules.dep``; a build tree's modules are staged with
depmod first); the archive format lives in :mod:`.cpio`.
Results are cached by a hash of every input, so a second build is free.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from kdebug.cachetrim import cap_bytes, trim, used
from kdebug.errors import InitramfsError, ToolMissing, UsageError
from kdebug.initramfs import modules as kmod
from kdebug.initramfs.cpio import Archive, concat
from kdebug.initramfs.recipe import Recipe
from kdebug.kernel import Kernel
from kdebug.paths import cache_dir, find_tool

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
FORMAT_VERSION = "3"  # bump when the layout of what we build changes


@dataclass
class Initramfs:
    path: Path
    recipe: str
    files: list[str]  # archive member names, the capture part included
    warnings: list[str] = field(default_factory=list)
    cached: bool = False


def which(name: str) -> Path:
    """The host's ``name`` kdebug uses: its own build (scripts/setup.d) first,
    then PATH and the system directories (kdebug.paths.find_tool)."""
    found = find_tool(name)
    if found is None:
        raise ToolMissing(f"{name} not found on this host", hint="run scripts/setup.sh")
    return found


#: Where the guest's /init finds a recipe binary (first on its PATH), wherever
#: the host keeps it (/usr/local/bin, kdebug's tools cache, ...).
GUEST_BIN = "bin"
#: Directories the guest's loader searches without an ld.so.cache (glibc's
#: system search path on Debian amd64): a library found elsewhere on the host
#: (through its ld.so.cache) goes to the first of them.
SYSTEM_LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib", "/lib64", "/usr/lib64")


_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def library_closure(binary: Path) -> list[Path]:
    """Every shared library (and the loader) a dynamic binary needs, per ldd."""
    try:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise ToolMissing("ldd not found (package libc-bin)") from None
    if out.returncode != 0:
        if "not a dynamic executable" in out.stdout + out.stderr:
            return []
        raise InitramfsError(f"ldd {binary} failed: {out.stderr.strip() or out.stdout.strip()}")
    libs = []
    for line in out.stdout.splitlines():
        if "not found" in line:
            raise InitramfsError(f"{binary} needs a library that is missing: {line.strip()}")
        m = _LDD_LINE.search(line)
        if m:
            libs.append(Path(m.group(1)))
    return libs


def _add_host_file(arc: Archive, guest: str, host: Path) -> None:
    st = host.stat()
    arc.add_file(guest, host.read_bytes(), stat.S_IMODE(st.st_mode))


def guest_library_path(lib: Path, loader: bool) -> str:
    """Where a library goes in the guest: its host path when the guest's
    loader searches there (and always for the loader, named by the binary's
    PT_INTERP), else a system directory."""
    if loader or str(lib.parent) in SYSTEM_LIB_DIRS:
        return str(lib)
    return f"{SYSTEM_LIB_DIRS[0]}/{lib.name}"


def _add_with_libs(arc: Archive, guest: str, host: Path) -> None:
    _add_host_file(arc, guest, host)
    for lib in library_closure(host):
        real = lib.resolve()
        _add_host_file(arc, guest_library_path(lib, loader=lib.name.startswith("ld-")), real)


def _read_ko(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".zst":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if path.suffix == ".gz":
        import gzip

        return gzip.decompress(data)
    return data


def tree_modules(kernel: Kernel) -> Path | None:
    """A build tree's modules as an installed tree would hold them, without
    ``make modules_install``: the ``.ko`` files modules.order lists (compressed
    or not) copied to ``lib/modules/<release>/kernel/`` in a cache
    directory, and ``depmod -b`` run there. None when the tree has no modules
    configured; one clear error when they are configured but not built."""
    tree = kernel.tree
    if tree is None:
        return None
    order_f = tree / "modules.order"
    if not order_f.is_file():
        wanted = sorted(f"CONFIG_{k}=m" for k, v in kernel.config.values.items() if v == "m")
        if kernel.config.enabled("MODULES") and wanted:
            raise InitramfsError(
                f"build tree {tree} configures modules ({', '.join(wanted[:3])}"
                f"{', ...' if len(wanted) > 3 else ''}) but has no modules.order: they are not built",
                hint=f"run `make -C {tree} modules`")
        return None
    entries = kmod.parse_modules_order(order_f.read_text())
    found: list[tuple[str, Path]] = []
    h = hashlib.sha256(f"{FORMAT_VERSION}\0{tree.resolve()}\0{kernel.release}".encode())
    for rel in entries:
        ko = next((tree / f"{rel}{ext}" for ext in kmod.KO_SUFFIXES if (tree / f"{rel}{ext}").is_file()), None)
        if ko is None:
            raise InitramfsError(f"{tree}/modules.order lists {rel}.ko, which is not built",
                                 hint=f"run `make -C {tree} modules`")
        st = ko.stat()
        h.update(f"{ko}:{st.st_size}:{st.st_mtime_ns}\0".encode())
        found.append((f"kernel/{rel}{ko.name[len(Path(rel).name):]}", ko))
    for extra in ("modules.builtin", "modules.builtin.modinfo"):
        if (tree / extra).is_file():
            h.update((tree / extra).read_bytes())
    staged = cache_dir("modules") / f"{kernel.release}-{h.hexdigest()[:16]}"
    mdir = staged / "lib" / "modules" / kernel.release
    if (staged / ".kdebug-staged").is_file():
        return mdir
    depmod = which("depmod")
    tmp = staged.with_name(f"{staged.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmod = tmp / "lib" / "modules" / kernel.release
    for dest, ko in found:
        (tmod / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ko, tmod / dest)
    tmod.mkdir(parents=True, exist_ok=True)
    (tmod / "modules.order").write_text("".join(f"{d}\n" for d, _ in found))
    for extra in ("modules.builtin", "modules.builtin.modinfo"):
        if (tree / extra).is_file():
            shutil.copyfile(tree / extra, tmod / extra)
    r = subprocess.run([str(depmod), "-b", str(tmp), kernel.release], capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0 or not (tmod / "modules.dep").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        last = (r.stderr or r.stdout).strip().splitlines()[-1:]
        raise InitramfsError(f"depmod on the modules of {tree} failed: {' '.join(last) or r.returncode}")
    (tmp / ".kdebug-staged").touch()
    shutil.rmtree(staged, ignore_errors=True)
    tmp.rename(staged)
    return mdir


def modules_dir(kernel: Kernel) -> Path | None:
    """Where ``modules.dep`` for ``kernel`` is: /lib/modules/<release>, or a
    build tree's staged copy."""
    if kernel.source == "tree":
        return tree_modules(kernel)
    return kernel.modules_dir


def _add_modules(arc: Archive, kernel: Kernel, mdir: Path | None, names: list[str], warnings: list[str],
                 strict: set[str]) -> None:
    if not names:
        return
    if mdir is None or not (mdir / "modules.dep").is_file():
        warnings.append(f"kernel {kernel.release} has no modules.dep: modules not added "
                        f"({', '.join(names)}); they must be built in")
        if strict:
            raise InitramfsError(f"cannot add modules {', '.join(sorted(strict))}: no modules.dep "
                                 f"for {kernel.release}")
        return
    dep = kmod.parse_modules_dep((mdir / "modules.dep").read_text())
    builtin_f = mdir / "modules.builtin"
    builtin = kmod.parse_builtin(builtin_f.read_text()) if builtin_f.is_file() else set()
    res = kmod.resolve(names, dep, builtin)
    bad = [m for m in res.missing if kmod.modname(m) in strict]
    if bad:
        raise InitramfsError(f"module {', '.join(bad)} not found for kernel {kernel.release}")
    if res.missing:
        warnings.append(f"modules not in {kernel.release}: {', '.join(res.missing)} (skipped)")
    # Each line: the module, then the modaliases of which a device must be
    # present for /init to load it (none: always). A driver for a device the
    # guest lacks costs its insmod at every boot and binds nothing.
    alias_f = mdir / "modules.alias"
    aliases = kmod.parse_modules_alias(alias_f.read_text()) if alias_f.is_file() else {}
    guards = kmod.device_guards(names, strict, res.ordered, dep, aliases)
    lines = []
    for rel in res.ordered:
        src = mdir / rel
        name = re.sub(r"\.(xz|zst|gz)$", "", rel)
        arc.add_file(f"lib/modules/{name}", _read_ko(src))
        lines.append(" ".join([name, *guards[rel]]))
    arc.add_file("etc/kdebug/modules", ("\n".join(lines) + "\n").encode())


def _compile_init(source: Path) -> bytes:
    key = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    out = cache_dir("init") / f"{source.stem}-{key}"
    if not out.exists():
        cc = shutil.which("gcc") or shutil.which("cc")
        if not cc:
            raise ToolMissing("no C compiler to build the static init", hint="apt-get install gcc libc6-dev")
        tmp = out.with_suffix(f".{os.getpid()}")
        r = subprocess.run([cc, "-static", "-O2", "-o", str(tmp), str(source)],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise InitramfsError(f"compiling {source} failed: {r.stderr.strip().splitlines()[-1:]}")
        tmp.replace(out)
    return out.read_bytes()


def base_archive(recipe: Recipe, kernel: Kernel, extra_files: dict[str, Path],
                 extra_modules: list[str], warnings: list[str], mdir: Path | None = None) -> Archive:
    arc = Archive()
    for d in ("dev", "proc", "sys", "tmp", "run", "root", "etc", "bin", "sbin", "usr/bin", "usr/sbin",
              "mnt", "newroot"):
        arc.add_dir(d)
    # The kernel opens /dev/console for init before anything is mounted.
    arc.add_node("dev/console", "c", 5, 1)
    arc.add_node("dev/null", "c", 1, 3, 0o666)
    if recipe.init_kind == "compile":
        arc.add_file("init", _compile_init(recipe.init_source), 0o755)
    else:
        arc.add_file("init", recipe.init_source.read_bytes(), 0o755)
    if recipe.busybox:
        bb = next((Path(p) for p in BUSYBOX_CANDIDATES if Path(p).is_file()), None)
        if bb is None:
            raise ToolMissing("busybox not found", hint="apt-get install busybox-static")
        if library_closure(bb):
            warnings.append(f"{bb} is dynamically linked; busybox-static is safer")
            _add_with_libs(arc, "bin/busybox", bb)
        else:
            _add_host_file(arc, "bin/busybox", bb)
        applets = subprocess.run([str(bb), "--list-full"], capture_output=True, text=True,
                                 timeout=10).stdout.split()
        for a in applets:
            # a recipe binary replaces busybox's applet of its name
            if a not in ("bin/busybox", "linuxrc") and Path(a).name not in recipe.binaries:
                arc.add_symlink(a, "/bin/busybox")
    for name in recipe.binaries:
        host = which(name)
        _add_with_libs(arc, f"{GUEST_BIN}/{name}", host)
    for guest, host in {**{g: Path(h) for g, h in recipe.files.items()}, **extra_files}.items():
        if not host.is_file():
            raise UsageError(f"extra file {host} does not exist")
        _add_with_libs(arc, guest, host) if os.access(host, os.X_OK) else _add_host_file(arc, guest, host)
    strict = {kmod.modname(m) for m in extra_modules}
    names = list(recipe.modules) + list(extra_modules)
    if names and mdir is None:
        mdir = modules_dir(kernel)
    _add_modules(arc, kernel, mdir, names, warnings, strict)
    arc.add_file("etc/kdebug/kernel.json", json.dumps(
        {"release": kernel.release, "build_id": kernel.build_id, "recipe": recipe.name}).encode())
    return arc


def _key(recipe: Recipe, kernel: Kernel, extra_files: dict[str, Path], extra_modules: list[str],
         mdir: Path | None, kdump: bool, capture_image: Path | None = None) -> str:
    h = hashlib.sha256()

    def stamp(p: Path) -> str:
        try:
            st = p.stat()
            return f"{p}:{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            return f"{p}:missing"

    parts = [FORMAT_VERSION, recipe.text, recipe.init_source.read_text(errors="replace"),
             kernel.release, str(kernel.build_id), stamp(kernel.image),
             str(mdir), *(stamp(mdir / f) for f in ("modules.dep", "modules.alias") if mdir is not None),
             f"kdump={kdump}", *extra_modules,
             *([f"capture={stamp(capture_image)}"] if capture_image is not None else []),
             *(f"{g}={stamp(h_)}" for g, h_ in sorted(extra_files.items())),
             *(stamp(Path(p)) for p in BUSYBOX_CANDIDATES)]
    for b in recipe.binaries:
        try:
            parts.append(stamp(which(b)))
        except ToolMissing:
            parts.append(f"{b}:missing")
    h.update("\0".join(parts).encode())
    return h.hexdigest()[:20]


def build_initramfs(recipe: Recipe, kernel: Kernel, output: Path | None = None, *,
                    extra_files: dict[str, Path] | None = None,
                    extra_modules: list[str] | None = None, use_cache: bool = True,
                    kdump: bool | None = None, capture_image: Path | None = None) -> Initramfs:
    """``kdump``: embed the capture kernel and its initramfs (the recipe says
    whether it can; None: as the recipe says). Only a guest with crashkernel=
    reserved can use them, and they double the archive the kernel unpacks.
    ``capture_image``: another kernel to capture with (kdebug.capture.capture_kernel);
    its initramfs then carries none of ``kernel``'s modules."""
    extra_files = extra_files or {}
    extra_modules = extra_modules or []
    with_kdump = recipe.kdump and (kdump is None or kdump)
    # A tree's staged modules are named by their content, so rebuilt modules
    # make a new initramfs.
    mdir = modules_dir(kernel) if recipe.modules or extra_modules else None
    other = capture_image if with_kdump and capture_image is not None \
        and capture_image.resolve() != kernel.image.resolve() else None
    key = _key(recipe, kernel, extra_files, extra_modules, mdir, with_kdump, other)
    cached = cache_dir("initramfs") / f"{recipe.name}-{key}.img"
    manifest = cached.with_suffix(".json")
    if use_cache and cached.is_file() and manifest.is_file():
        meta = json.loads(manifest.read_text())
        result = Initramfs(cached, recipe.name, meta["files"], meta["warnings"], cached=True)
        used(cached)
    else:
        warnings: list[str] = []
        arc = base_archive(recipe, kernel, extra_files, extra_modules, warnings, mdir)
        base = arc.to_cpio_gz()
        names = arc.names()
        parts = [base]
        if with_kdump:
            # The capture kernel boots the same image with the same archive
            # (minus this part): one /init serves both. Kept uncompressed so
            # the already-compressed bzImage is not squeezed again.
            extra = Archive()
            if other is None:
                extra.add_file("kdump/vmlinuz", kernel.image.read_bytes())
                extra.add_file("kdump/initrd.img", base)
            else:
                # Another kernel: the same /init and files, but no modules
                # built for ``kernel`` (it has what it needs built in).
                bare = replace(recipe, modules=())
                extra.add_file("kdump/vmlinuz", other.read_bytes())
                extra.add_file("kdump/initrd.img",
                               base_archive(bare, kernel, extra_files, [], []).to_cpio_gz())
            parts.append(extra.to_cpio())
            names += [n for n in extra.names() if n not in names]
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(concat(parts))
        tmp.replace(cached)
        manifest.write_text(json.dumps({"files": names, "warnings": warnings}))
        # Extra files are keyed by path and mtime: each run of a test suite
        # (or a user's temporary files) adds images, so the cache is capped.
        trim(cached.parent, cap_bytes("initramfs"), keep=cached)
        result = Initramfs(cached, recipe.name, names, warnings)
    if output is not None:
        _install(result.path, output)
        result.path = output
    return result


def _install(src: Path, dst: Path) -> None:
    if dst.is_dir():
        raise UsageError(f"output {dst} is a directory")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)


def build_ext4(recipe: Recipe, kernel: Kernel, output: Path, size_mb: int = 256, *,
               extra_files: dict[str, Path] | None = None,
               extra_modules: list[str] | None = None) -> Initramfs:
    """An ext4 root disk with the recipe's files, made by ``mke2fs -d`` (no mount)."""
    mke2fs = which("mke2fs")
    warnings: list[str] = []
    arc = base_archive(recipe, kernel, extra_files or {}, extra_modules or [], warnings)
    if output.is_dir():
        raise UsageError(f"output {output} is a directory")
    with tempfile.TemporaryDirectory(prefix="kdebug-rootfs-") as tmpd:
        root = Path(tmpd)
        for e in arc.entries.values():
            p = root / e.path
            if stat.S_ISDIR(e.mode):
                p.mkdir(parents=True, exist_ok=True)
            elif stat.S_ISLNK(e.mode):
                p.symlink_to(e.data.decode())
            elif stat.S_ISREG(e.mode):
                p.write_bytes(e.data)
                os.chmod(p, stat.S_IMODE(e.mode))
            elif os.geteuid() == 0:
                os.mknod(p, e.mode, os.makedev(*e.rdev))
        tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        r = subprocess.run([str(mke2fs), "-q", "-F", "-t", "ext4", "-L", "kdebug-root", "-d", str(root),
                            str(tmp), f"{size_mb}M"], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise InitramfsError(f"mke2fs failed: {r.stderr.strip()}")
        tmp.replace(output)
    return Initramfs(output, recipe.name, arc.names(), warnings)
