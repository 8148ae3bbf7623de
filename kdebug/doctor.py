"""`kdebug doctor`: what this host and kernel can do, as records then text;
`kdebug doctor DUMP`: where each piece of a dump's debug info comes from."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.analysis.debugfiles import dump_modules
from kdebug.crash.runner import pick_crash
from kdebug.errors import KdebugError
from kdebug.kconfig import check_features, check_sanitizers, load_features, load_sanitizers
from kdebug.kernel import Kernel, image_build_id, vmlinux_build_id
from kdebug.paths import find_tool
from kdebug.plan.accel import AccelChoice, choose_accel
from kdebug.vmcore.debuginfod import Progress
from kdebug.vmcore.filter import choose_level, kernel_exports_file, tool_reads
from kdebug.vmcore.info import identify
from kdebug.vmcore.layouts import locate
from kdebug.vmcore.locate import RECORDED, find_module_files, locate_vmlinux, reassemble, recorded_kernel
from kdebug.vmcore.search import MISSING, DebugInfoMissing, DebugSearch, Piece

#: (tool, package, version argument, what it is for)
TOOLS = [
    ("qemu-system-x86_64", "qemu-system-x86", "--version", "boots every guest"),
    ("gdb", "gdb", "--version", "kdebug attach"),
    ("crash", "crash", "--version", "postmortem (second engine)"),
    ("kexec", "kexec-tools", "--version", "capture kernel inside the guest"),
    ("makedumpfile", "makedumpfile", "-v", "filtered vmcores"),
    ("busybox", "busybox-static", "--help", "the guest's shell"),
    ("mke2fs", "e2fsprogs", "-V", "ext4 root images"),
    ("debugfs", "e2fsprogs", "-V", "read vmcores out of disk images"),
    ("gcc", "gcc", "--version", "the hello init, trigger modules"),
]


@dataclass(frozen=True)
class ToolRow:
    tool: str
    package: str
    path: str | None
    version: str
    purpose: str


@dataclass(frozen=True)
class FeatureRow:
    feature: str
    ok: bool
    missing: str
    cost: str


@dataclass(frozen=True)
class SanitizerRow:
    sanitizer: str
    present: bool
    settings: str
    note: str


@dataclass(frozen=True)
class DoctorReport:
    tools: list[ToolRow]
    accel: AccelChoice
    kernel: Kernel | None
    kernel_error: str | None
    image_build_id: str | None
    vmlinux_build_id: str | None
    features: list[FeatureRow]
    sanitizers: list[SanitizerRow] = field(default_factory=list)
    #: For this kernel: the crash kdebug runs on its dumps and the makedumpfile
    #: (and -d level) its captures use, each with the reason.
    crash_choice: str = ""
    makedumpfile_choice: str = ""

    @property
    def ok(self) -> bool:
        return all(t.path for t in self.tools) and self.kernel is not None


def _version(path: str, arg: str) -> str:
    try:
        r = subprocess.run([path, arg], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    for line in (r.stdout + r.stderr).splitlines():
        if line.strip():
            return line.strip()[:70]
    return "?"


def collect_doctor(find_kernel) -> DoctorReport:
    tools = []
    for tool, pkg, arg, purpose in TOOLS:
        found = find_tool(tool)  # kdebug's own builds (scripts/setup.d) first, as every command
        path = str(found) if found else None
        tools.append(ToolRow(tool, pkg, path, _version(path, arg) if path else "missing", purpose))
    accel = choose_accel("auto")
    kernel = err = None
    iid = vid = None
    feats: list[FeatureRow] = []
    sans: list[SanitizerRow] = []
    try:
        kernel = find_kernel()
    except KdebugError as e:
        err = str(e)
    if kernel is not None:
        iid = image_build_id(kernel.image)
        vid = vmlinux_build_id(kernel.vmlinux) if kernel.vmlinux else None
        for chk in check_features(kernel.config, load_features()):
            feats.append(FeatureRow(
                chk.feature.name, chk.ok,
                ", ".join("CONFIG_" + r.option for r in chk.missing),
                "; ".join(r.why for r in chk.missing)))
        for s in check_sanitizers(kernel.config, load_sanitizers()):
            sans.append(SanitizerRow(s.sanitizer.name, s.present, ", ".join(s.settings), s.note))
        crash, mdf = _tool_choices(kernel)
    else:
        crash = mdf = ""
    return DoctorReport(tools, accel, kernel, err, iid, vid, feats, sans, crash, mdf)


def _tool_choices(kernel: Kernel) -> tuple[str, str]:
    """Which crash reads this kernel's dumps, and which makedumpfile at which level captures them."""
    crash = pick_crash(kernel.vmlinux).reason if kernel.vmlinux else "no vmlinux: crash cannot run"
    mdf = find_tool("makedumpfile")
    if mdf is None:
        return crash, "makedumpfile is not installed"
    level = choose_level(None, kernel_exports_file(kernel.vmlinux, kernel.image), tool_reads(mdf), str(mdf))
    return crash, level.reason


def format_doctor(r: DoctorReport) -> str:
    from tabulate import tabulate

    out = ["Host tools"]
    out.append(tabulate([(t.tool, "ok" if t.path else f"MISSING (apt-get install {t.package})",
                          t.version if t.path else "", t.purpose) for t in r.tools],
                        headers=["tool", "status", "version", "for"]))
    out += ["", f"Accelerator: {r.accel.name} ({r.accel.reason})", ""]
    if r.kernel is None:
        out.append(f"Kernel: NOT FOUND: {r.kernel_error}")
        return "\n".join(out)
    k = r.kernel
    match = ("match" if r.image_build_id == r.vmlinux_build_id else "MISMATCH") \
        if r.image_build_id and r.vmlinux_build_id else "unknown"
    out.append("Kernel")
    out.append(tabulate([
        ("release", k.release),
        ("source", k.source),
        ("image", f"{k.image}  build-id {r.image_build_id or '?'}"),
        ("vmlinux", f"{k.vmlinux or 'none'}  build-id {r.vmlinux_build_id or '?'}"),
        ("pairing", match),
        ("config", k.config.source or "not found"),
        ("modules", str(k.modules_dir or "none")),
        ("module debug info", str(k.module_debug_dir or "none")),
    ], tablefmt="plain"))
    out += ["", "Kernel features"]
    out.append(tabulate([(f.feature, "yes" if f.ok else "no", f.missing or "-", f.cost or "-")
                         for f in r.features], headers=["feature", "ready", "missing", "what it costs"]))
    if r.sanitizers and k.config.values:
        out += ["", "Sanitizers (bug detectors built in)"]
        out.append(tabulate([(s.sanitizer, "yes" if s.present else "no", s.settings or "-",
                              s.note or "-") for s in r.sanitizers],
                            headers=["detector", "built in", "settings", "note"]))
    if r.crash_choice or r.makedumpfile_choice:
        out += ["", "Dump tools for this kernel"]
        out.append(tabulate([("crash", r.crash_choice), ("makedumpfile", r.makedumpfile_choice)],
                            tablefmt="plain"))
    for n in k.notes:
        out.append(f"note: {n}")
    return "\n".join(out)


# --- kdebug doctor DUMP ---------------------------------------------------------

@dataclass(frozen=True)
class DumpDoctor:
    """Where each piece of a dump's debug info is, or would come from."""

    dump: Path
    release: str | None
    build_id: str | None
    vmlinux: Piece
    modules: list[Piece]
    search: DebugSearch
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.vmlinux.source != MISSING


def collect_dump_doctor(path: Path, *, vmlinux: Path | None = None, tree: Path | None = None,
                        fetch: bool = False, progress: Progress | None = None,
                        module_dirs: tuple[Path, ...] = ()) -> DumpDoctor:
    """Find (``fetch``: and download) the dump's vmlinux, then each loaded
    module's debug file: on this machine, in the cache, or on a server."""
    site = locate(Path(path))
    info = identify(site.vmcore)
    if info.format == "flattened":
        info = identify(reassemble(info.path))
    given = "given"
    if vmlinux is None and tree is None:
        vmlinux, tree = recorded_kernel(site, info.build_id)
        given = RECORDED
    search = DebugSearch.from_env(progress)
    notes = []
    try:
        vm, _mods = locate_vmlinux(info, vmlinux, tree, search, given_as=given, fetch_it=fetch)
    except DebugInfoMissing as e:
        vm = Piece("vmlinux", e.build_id, None, MISSING, "; ".join(e.tried), note=e.hint or "")
    modules: list[Piece] = []
    if vm.path is None:
        notes.append("the dump's module list is read through the vmlinux's debug info: "
                     + ("pass --fetch to download it" if vm.source != MISSING else "get the vmlinux first"))
    else:
        # Out-of-tree modules beside a capture or under --module-dir, and a build tree's own.
        extra = (*find_module_files(site, module_dirs), *(sorted(tree.rglob("*.ko")) if tree else ()))
        for name, bid in dump_modules(info.path, vm.path):
            piece = search.local_module(name, bid, info.release, extra)
            if piece is None and bid and search.urls:
                if fetch:
                    got = search.fetch_module(name, bid)
                    piece = Piece(name, bid, got, "debuginfod", "", "") if got else None
                else:
                    piece = search.probe(bid, name)
            modules.append(piece or Piece(name, bid, None, MISSING, "not found locally"
                                          + ("" if search.urls else "; no DEBUGINFOD_URLS")))
        notes += search.failures
    return DumpDoctor(Path(path), info.release, info.build_id, vm, modules, search, notes)


def dump_doctor_dict(d: DumpDoctor) -> dict:
    """The record as JSON-ready data (``kdebug doctor DUMP --json``)."""
    def piece(p: Piece) -> dict:
        return {"what": p.what, "build_id": p.build_id, "path": str(p.path) if p.path else None,
                "source": p.source, "where": p.where, "note": p.note}

    return {"dump": str(d.dump), "release": d.release, "build_id": d.build_id, "ok": d.ok,
            "vmlinux": piece(d.vmlinux), "modules": [piece(m) for m in d.modules], "notes": d.notes,
            "searched": {"debug_dirs": [str(x) for x in d.search.dirs], "cache": str(d.search.cache),
                         "debuginfod": list(d.search.urls)}}


def format_dump_doctor(d: DumpDoctor) -> str:
    from tabulate import tabulate

    s = d.search
    out = [f"Dump {d.dump}: release {d.release or '?'}, build-id {d.build_id or 'none in VMCOREINFO'}",
           "Searched, in order: --vmlinux/capture.json; debug directories "
           + (", ".join(map(str, s.dirs)) or "none (KDEBUG_DEBUG_DIRS is empty)")
           + f"; kdebug's build trees; cache {s.cache}; debuginfod "
           + (" ".join(s.urls) or "none (DEBUGINFOD_URLS unset)"), ""]

    def row(p: Piece):
        where = str(p.path) if p.path else p.where
        return (p.what, p.build_id or "?", p.source, where or "-", p.note or "")

    out.append(tabulate([row(d.vmlinux), *(row(m) for m in d.modules)],
                        headers=["piece", "build-id", "from", "where", "note"]))
    missing = [m.what for m in d.modules if m.source == MISSING]
    if missing:
        out.append(f"missing: {len(missing)} module(s): {', '.join(missing)}")
    out += [f"note: {n}" for n in d.notes]
    return "\n".join(out)
