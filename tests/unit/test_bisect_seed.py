"""A kernel history's seed, with real git on a small tree that looks like
a built kernel (sources, kbuild's unpack mark, generated files): the seed's
source tree id is the id git gives the same sources committed; the
generated files are exactly those the build made; seeding a worktree copies them newer than
the commit's sources, so make would rebuild only what a later checkout
changes; a history without the seed's sources is not seeded."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from kdebug.bisect import ktree
from tests.conftest import need_tool

ENV = {"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@example.org", "GIT_COMMITTER_NAME": "A",
       "GIT_COMMITTER_EMAIL": "a@example.org", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
SOURCES = {"init/main.c": "int main;\n", "fs/proc/version.c": "int v;\n", "Makefile": "VERSION = 6\n",
           ".gitignore": "*.o\n/vmlinux\n.config\n*.cmd\n/vmlinux-gdb.py\n", "scripts/run.sh": "#!/bin/sh\n"}
GENERATED = {"init/main.o": "obj", "fs/proc/version.o": "obj", "vmlinux": "elf", ".config": "CONFIG_X=y\n"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env=ENV).stdout.strip()


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    if (root / "scripts/run.sh").exists():
        (root / "scripts/run.sh").chmod(0o755)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    need_tool("git", "tar")
    monkeypatch.setenv("KDEBUG_CACHE", str(tmp_path / "cache"))
    # A `kdebug kernel build` tree built in place, as kbuild leaves it: the
    # tarball's files, its unpack mark, then what the build made.
    built = tmp_path / "cache/kernels/linux-x-0123"
    tree = built / "src"
    now = time.time()
    write(tree, SOURCES)
    (tree / ktree.UNPACKED).touch()
    for rel, t in [*((r, now - 7200) for r in SOURCES), (ktree.UNPACKED, now - 7000)]:
        os.utime(tree / rel, (t, t))
    write(tree, GENERATED)
    # objtool's command file names the tree by its absolute path; vmlinux-gdb.py links into it.
    (tree / "tools/objtool").mkdir(parents=True)
    (tree / "tools/objtool/.fixdep.o.cmd").write_text(f"cmd_fixdep.o := gcc -o {tree}/tools/objtool/fixdep.o\n")
    (tree / "vmlinux-gdb.py").symlink_to(tree / "scripts/run.sh")
    for rel in [*GENERATED, "tools/objtool/.fixdep.o.cmd", "vmlinux-gdb.py"]:  # built an hour ago, in order
        os.utime(tree / rel, (now - 3600 + len(rel), now - 3600 + len(rel)), follow_symlinks=False)
    (built / ".kdebug-built").write_text(str(tree))
    return tree


def history(tmp_path: Path) -> tuple[Path, list[str]]:
    repo = tmp_path / "linux"
    repo.mkdir()
    write(repo, SOURCES)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    (repo / "fs/proc/version.c").write_text("int v = 1;\n")
    git(repo, "commit", "-q", "-am", "change")
    return repo, git(repo, "rev-list", "--reverse", "HEAD").split()


def test_seed_identity_is_the_commits_tree(cache, tmp_path):
    repo, (base, bad) = history(tmp_path)
    objects = git(repo, "count-objects", "-v")
    seed = ktree.seed_identity(cache, say=lambda m: None)
    assert seed.tree_id == git(repo, "rev-parse", f"{base}^{{tree}}")
    assert sorted(seed.generated.read_bytes().decode().split("\0")[:-1]) == sorted(
        [*GENERATED, "tools/objtool/.fixdep.o.cmd", "vmlinux-gdb.py"])
    assert ktree.commit_with_tree(repo, bad, seed.tree_id) == base
    assert git(repo, "count-objects", "-v") == objects  # nothing written into the user's repository
    assert ktree.seed_candidates({"CONFIG_X": "y"}) == [cache]


def test_seeding_makes_only_the_next_commits_changes_newer(cache, tmp_path):
    repo, (base, bad) = history(tmp_path)
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "--detach", str(wt), bad)
    config = tmp_path / "bisect.config"
    config.write_text("CONFIG_X=y\n")
    done = ktree.seed(repo, wt, bad, config, say=lambda m: None)
    assert done["commit"] == base and git(wt, "rev-parse", "HEAD") == base
    for rel, text in GENERATED.items():
        assert (wt / rel).read_text() == text
        assert (wt / rel).stat().st_mtime >= (wt / "init/main.c").stat().st_mtime
    # Relocated: the worktree's own paths, one time for every generated file.
    assert (wt / "tools/objtool/.fixdep.o.cmd").read_text() == f"cmd_fixdep.o := gcc -o {wt}/tools/objtool/fixdep.o\n"
    assert os.readlink(wt / "vmlinux-gdb.py") == str(wt / "scripts/run.sh") and done["relocated"] == 2
    times = {os.lstat(wt / rel).st_mtime_ns for rel in [*GENERATED, "tools/objtool/.fixdep.o.cmd", "vmlinux-gdb.py"]}
    assert len(times) == 1
    time.sleep(1.1)
    git(wt, "checkout", "-q", "--detach", bad)
    assert (wt / "fs/proc/version.c").stat().st_mtime > (wt / "fs/proc/version.o").stat().st_mtime
    assert (wt / "init/main.c").stat().st_mtime <= (wt / "init/main.o").stat().st_mtime
    assert git(wt, "status", "--porcelain") == ""  # the generated files are all ignored, none is a source


def test_no_seed_for_another_history(cache, tmp_path):
    repo = tmp_path / "other"
    repo.mkdir()
    write(repo, {**SOURCES, "init/main.c": "int other;\n"})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "other")
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "--detach", str(wt), "main")
    config = tmp_path / "bisect.config"
    config.write_text("CONFIG_X=y\n")
    assert ktree.seed(repo, wt, "main", config, say=lambda m: None) == {}
    assert not (wt / "vmlinux").exists()
