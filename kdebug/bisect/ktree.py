"""A kernel-source history's builds (adapter): one work tree per
bisection, built in place and incrementally from commit to commit.

- **The configuration** is made once, at the bad end: the user's
  ``--config FILE``, or tinyconfig + kdebug's fragments (as ``kdebug kernel
  build``); every step copies it to ``.config`` and runs ``make
  olddefconfig``, as a bisection by hand does.
- **The seed**: an object tree ``kdebug kernel build`` left in kdebug's
  cache whose sources are exactly a commit S of the history (same git tree
  id, computed once per seed without writing into the user's repository)
  starts the work tree: the worktree is checked out at S and the seed's
  generated files (those newer than kbuild's unpack mark: Debian's
  .gitignore ignores the whole top level, so it cannot tell) are copied in,
  newer than S's sources. Checking out the next commit then makes only
  the files it changes newer than their objects, and make rebuilds just
  those: kbuild's own incremental rules, as in a developer's tree. A
  history with no such commit builds from scratch once.
- **Stored builds**: each built commit's bzImage, vmlinux, System.map,
  .config and release (and its modules, when it has any) go to ``bisect/kernels/<commit>-<config digest>/``,
  so a commit built once (in this or an earlier bisection) is not built again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kdebug.bisect import gitargv
from kdebug.bisect.build import BUILD_TIMEOUT, DONE, Built
from kdebug.bisect.git import BisectError, run
from kdebug.bisect.verdict import one_line
from kdebug.errors import ToolMissing, UsageError
from kdebug.initramfs.modules import parse_modules_order
from kdebug.kbuild import BASES, parse_fragment, wants_modules
from kdebug.paths import cache_dir

#: What a step keeps of its build: enough for kdebug.kernel.tree_kernel.
KEPT = ("arch/x86/boot/bzImage", "vmlinux", "System.map", ".config", "include/config/kernel.release")
#: And, when the configuration has modules (=m), these and the .ko files modules.order lists.
KEPT_MODULES = ("modules.order", "modules.builtin", "modules.builtin.modinfo")
TARGETS = ("bzImage", "vmlinux")


@dataclass(frozen=True)
class KernelConfig:
    """How each commit is configured: ``config`` (the tree's own .config,
    --config FILE), else ``base`` + ``fragments`` in order."""

    fragments: tuple[Path, ...] = ()
    config: Path | None = None
    base: str = "tinyconfig"

    def describe(self) -> str:
        if self.config is not None:
            return f"--config {self.config}"
        return " + ".join([self.base, *(f.name for f in self.fragments)])

    def check(self) -> None:
        if self.base not in BASES:
            raise UsageError(f"unknown base config {self.base!r} (use {' or '.join(BASES)})")
        for f in ([self.config] if self.config else list(self.fragments)):
            if not f.is_file():
                raise UsageError(f"kernel config {f} does not exist")
        for tool in ("make", "gcc", "flex", "bison", "bc"):
            if shutil.which(tool) is None:
                raise ToolMissing(f"{tool} not found", hint="run scripts/setup.sh (scripts/packages.d/gdb.txt)")


def _make(wt: Path, log, *targets: str, jobs: int = 1, timeout: float = BUILD_TIMEOUT) -> int | None:
    argv = ["make", "-C", str(wt), f"-j{jobs}", *targets]
    log.write(f"$ {' '.join(argv)}\n".encode())
    log.flush()
    try:
        return subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return None


def make_config(wt: Path, cfg: KernelConfig, dest: Path, log_path: Path) -> None:
    """The bisection's one configuration, made in the worktree (at the bad end)."""
    if cfg.config is not None:
        shutil.copyfile(cfg.config, dest)
        return
    with open(log_path, "ab") as log:
        ok = _make(wt, log, cfg.base) == 0
        if ok:
            merge = [str(wt / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(wt), str(wt / ".config"),
                     *(str(f.resolve()) for f in cfg.fragments)]
            ok = subprocess.run(merge, cwd=wt, stdout=log, stderr=subprocess.STDOUT).returncode == 0
        ok = ok and _make(wt, log, "olddefconfig") == 0
    if not ok:
        raise BisectError(f"configuring the bad end ({cfg.describe()}) failed", hint=f"see {log_path}")
    shutil.copyfile(wt / ".config", dest)


# --- the seed ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    tree: Path  # a `kdebug kernel build` tree built in place
    tree_id: str  # the git tree id of its sources
    generated: Path  # file listing its generated files, NUL-separated


#: kdebug.kbuild marks a tarball's tree unpacked before building in it: every
#: file no newer than the mark came from the tarball, every newer one from the build.
UNPACKED = ".kdebug-unpacked"


def seed_candidates(config: dict[str, str]) -> list[Path]:
    """Cached in-place kernel builds of unpacked tarballs, nearest configuration first."""
    out = []
    for done in cache_dir("kernels").glob("*/.kdebug-built"):
        tree = Path(done.read_text().strip())
        if (tree / UNPACKED).is_file() and (tree / ".config").is_file() and (tree / "vmlinux").is_file():
            theirs = parse_fragment((tree / ".config").read_text())
            out.append((sum(config.get(k) != v for k, v in theirs.items()) +
                        sum(k not in theirs for k in config), str(tree)))
    return [Path(t) for _, t in sorted(out)]


def split_tree(tree: Path) -> tuple[list[str], list[str]]:
    """``tree``'s files (and symlinks) as (sources, generated), by the unpack mark's time."""
    mark = (tree / UNPACKED).stat().st_mtime_ns
    sources, generated = [], []
    for d, dirs, files in os.walk(tree):
        for name in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            full = os.path.join(d, name)
            rel = os.path.relpath(full, tree)
            if rel != UNPACKED:
                (sources if os.lstat(full).st_mtime_ns <= mark else generated).append(rel)
    return sorted(sources), sorted(generated)


def seed_identity(tree: Path, say) -> Seed:
    """The git tree id of ``tree``'s sources and the list of its generated
    files, computed once (a private index; no object is written for a file)."""
    built = tree.parent / ".kdebug-built"
    stamp = f"{tree.resolve()}:{built.stat().st_mtime_ns if built.exists() else 0}"
    d = cache_dir("bisect", "seeds") / hashlib.sha256(stamp.encode()).hexdigest()[:16]
    meta = d / "seed.json"
    if meta.is_file():
        return Seed(tree, json.loads(meta.read_text())["tree_id"], d / "generated")
    say(f"seed: reading the sources of {tree} (once)")
    t0 = time.monotonic()
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    sources, generated = split_tree(tree)
    gd = d / "git"
    run(["git", "init", "-q", "--bare", str(gd)])
    g = ["git", f"--git-dir={gd}", f"--work-tree={tree}", "-c", "core.quotepath=off"]
    subprocess.run([*g, "update-index", "--add", "--info-only", "-z", "--stdin"], check=True, timeout=1800,
                   input="".join(f"{s}\0" for s in sources).encode(), capture_output=True)
    tree_id = subprocess.run([*g, "write-tree", "--missing-ok"], capture_output=True, text=True, check=True,
                             timeout=600).stdout.strip()
    (d / "generated").write_bytes("".join(f"{s}\0" for s in generated).encode())
    shutil.rmtree(gd)
    meta.write_text(json.dumps({"tree": str(tree), "tree_id": tree_id, "seconds": round(time.monotonic() - t0, 1),
                                "sources": len(sources), "generated": len(generated)}))
    return Seed(tree, tree_id, d / "generated")


def commit_with_tree(top: Path, bad: str, tree_id: str, limit: int = 100000) -> str | None:
    """A commit reachable from ``bad`` whose tree is ``tree_id``."""
    out = run(gitargv.git(top, "log", f"--max-count={limit}", "--format=%H %T", bad), timeout=600).stdout
    return next((h for h, t in (ln.split() for ln in out.splitlines()) if t == tree_id), None)


def seed(top: Path, wt: Path, bad: str, config: Path, say) -> dict:
    """Start the worktree from a cached build of one of the history's
    commits, if there is one; what was done, for the state file."""
    wanted = parse_fragment(config.read_text())
    for tree in seed_candidates(wanted):
        s = seed_identity(tree, say)
        commit = commit_with_tree(top, bad, s.tree_id)
        if commit is None:
            continue
        t0 = time.monotonic()
        run(gitargv.git(wt, "checkout", "--detach", "--force", commit), timeout=600)
        r = subprocess.run(f"tar -C {_q(tree)} --null -T {_q(s.generated)} -cf - | tar -C {_q(wt)} -xf -",
                           shell=True, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise BisectError(f"copying the seed {tree} failed: {one_line(r.stderr, 200)}")
        moved = relocate(wt, tree, s.generated.read_bytes().decode(errors="surrogateescape").split("\0"))
        secs = time.monotonic() - t0
        say(f"seed: {tree} is commit {commit[:12]}'s sources built; its objects copied in {secs:.0f} s "
            f"({moved} files' paths moved)")
        return {"tree": str(tree), "commit": commit, "seconds": round(secs, 1), "relocated": moved}
    say("seed: no cached kernel build matches a commit of this history: the first build is a full one")
    return {}


def relocate(wt: Path, tree: Path, generated: list[str]) -> int:
    """Make the copied build ``wt``'s own: its absolute paths into ``tree``
    (objtool's commands and dependency files, vmlinux-gdb.py's link) point
    into ``wt``, or kbuild would see changed commands and rebuild objtool, and
    so every object; then every generated file gets one time, newer than the
    checked-out sources (make rebuilds a target only when a prerequisite is
    strictly newer, and the copy's own order must not decide that)."""
    old, new = str(tree).encode(), str(wt).encode()
    moved = 0
    for rel in filter(None, generated):
        f = wt / rel
        if f.is_symlink():
            target = os.readlink(f)
            if target.startswith(str(tree)):
                f.unlink()
                f.symlink_to(str(wt) + target[len(str(tree)):])
                moved += 1
        elif rel.endswith((".cmd", ".d")) and f.is_file():
            data = f.read_bytes()
            if old in data:
                f.write_bytes(data.replace(old, new))
                moved += 1
    now = time.time_ns()
    for rel in filter(None, generated):
        if os.path.lexists(wt / rel):
            os.utime(wt / rel, ns=(now, now), follow_symlinks=False)
    return moved


def _q(p: Path) -> str:
    return "'" + str(p).replace("'", "'\\''") + "'"


# --- one commit's build ---------------------------------------------------------------------------------


def store_for(commit: str, config: Path) -> Path:
    digest = hashlib.sha256(config.read_bytes()).hexdigest()[:12]
    return cache_dir("bisect", "kernels") / f"{commit}-{digest}"


def build_commit(wt: Path, store: Path, config: Path, *, jobs: int | None = None,
                 timeout: float = BUILD_TIMEOUT) -> Built:
    """Build the commit checked out in ``wt`` with the bisection's
    configuration; ``Built.tree`` is the stored tree to boot."""
    done = store / DONE
    if done.is_file():
        meta = json.loads(done.read_text())
        if meta.get("ok") is False:
            return Built(False, None, tail=meta.get("tail", ""))
        if all((store / "tree" / k).is_file() for k in KEPT):
            return Built(True, None, tree=store / "tree")
    store.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    shutil.copyfile(config, wt / ".config")
    j = jobs or os.cpu_count() or 1
    with open(store / "build.log", "wb") as log:
        status = _make(wt, log, "olddefconfig", timeout=timeout)
        modules = wants_modules(parse_fragment((wt / ".config").read_text()))
        if status == 0:
            status = _make(wt, log, *TARGETS, *(["modules"] if modules else []), jobs=j, timeout=timeout)
    seconds = time.monotonic() - t0
    if status != 0:
        words = (store / "build.log").read_text(errors="replace").strip().splitlines()
        tail = f"took over {timeout:.0f} s" if status is None else one_line(" | ".join(words[-2:]), 200)
        if status is not None:  # a timeout may be the host's load: tried again next time
            done.write_text(json.dumps({"ok": False, "seconds": seconds, "tail": tail}))
        return Built(False, seconds, tail=tail)
    kept = list(KEPT)
    if modules:
        kept += [k for k in KEPT_MODULES if (wt / k).is_file()]
        kept += [f"{m}.ko" for m in parse_modules_order((wt / "modules.order").read_text())]
    for k in kept:
        dest = store / "tree" / k
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(wt / k, dest)
    done.write_text(json.dumps({"ok": True, "seconds": seconds}))
    return Built(True, seconds, tree=store / "tree")
