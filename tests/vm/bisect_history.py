"""A kernel history for kdebug bisect's tests and bench: a git repository
made from Debian's linux-source tarball (the same one setup's debug tree
is built from) with three commits on top, the second of which makes
/proc/version's handler read through a NULL pointer.

The repository is made once per tarball (and recipe) under kdebug's cache:
``git add`` of ~75k files costs a minute or more, and the commits have
fixed dates, so their hashes are the same every time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from kdebug.kbuild import DEFAULT_SOURCE
from kdebug.paths import cache_dir

#: (subject, file, old text, new text): each commit is one replacement.
COMMITS = [
    ("proc: cmdline: end the line with seq_putc only",
     "fs/proc/cmdline.c",
     "\tseq_puts(m, saved_command_line);\n",
     "\t/* The command line, then its newline. */\n\tseq_puts(m, saved_command_line);\n"),
    ("proc: version: take the names from the seq_file's private data",
     "fs/proc/version.c",
     "\tseq_printf(m, linux_proc_banner,\n\t\tutsname()->sysname,\n\t\tutsname()->release,\n"
     "\t\tutsname()->version);\n",
     "\tstruct new_utsname *u = m->private;\n\n\tif (!u->sysname[0])\n\t\treturn -EIO;\n"
     "\tseq_printf(m, linux_proc_banner, u->sysname, u->release, u->version);\n"),
    ("proc: uptime: a comment on the idle sum",
     "fs/proc/uptime.c",
     "static int uptime_proc_show(struct seq_file *m, void *v)\n{\n",
     "static int uptime_proc_show(struct seq_file *m, void *v)\n{\n\t/* Idle time: the sum over the CPUs. */\n"),
]
BAD = 1  # index in COMMITS of the commit that brings the crash
REPRODUCER = "cat /proc/version"
TITLE = "BUG: kernel NULL pointer dereference in version_proc_show"
_ENV = {"GIT_AUTHOR_NAME": "Ann Author", "GIT_AUTHOR_EMAIL": "ann@example.org",
        "GIT_COMMITTER_NAME": "Ann Author", "GIT_COMMITTER_EMAIL": "ann@example.org",
        "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
        "PATH": "/usr/bin:/bin", "LC_ALL": "C"}


def git(repo: Path, *args: str, date: int = 0) -> str:
    env = {**_ENV, "HOME": str(repo)}
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"2024-01-0{1 + date}T00:00:00Z"
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env=env).stdout.strip()


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()[:16]


def kernel_history(tarball: Path = DEFAULT_SOURCE, say=print) -> tuple[Path, list[str], dict[str, float]]:
    """The repository, its commits' hashes (the tarball's first, then
    COMMITS'), and the seconds each part of making it took (empty when it
    was made before)."""
    recipe = hashlib.sha256(repr(COMMITS).encode()).hexdigest()[:8]
    top = cache_dir("test-kernel-history") / f"{_digest(tarball)}-{recipe}"
    repo = top / "linux"
    if not (top / "done").is_file():
        times = _make(tarball, repo, say)
        (top / "done").write_text(repr(times))
    else:
        times = {}
    hashes = git(repo, "rev-list", "--reverse", "HEAD").split()
    assert len(hashes) == len(COMMITS) + 1, hashes
    return repo, hashes, times


def _make(tarball: Path, repo: Path, say) -> dict[str, float]:
    times = {}
    shutil.rmtree(repo.parent / "unpack", ignore_errors=True)
    shutil.rmtree(repo, ignore_errors=True)
    t0 = time.monotonic()
    say(f"unpacking {tarball}")
    # tar(1), not tarfile: the same files, in a third of the time (tarfile
    # took 210 s for the 6.1 tarball on a loaded 2-core machine).
    (repo.parent / "unpack").mkdir(parents=True)
    subprocess.run(["tar", "-C", str(repo.parent / "unpack"), "--no-same-owner", "-xf", str(tarball)],
                   check=True, capture_output=True, timeout=3600)
    (real,) = [d for d in (repo.parent / "unpack").iterdir() if d.is_dir()]
    os.rename(real, repo)
    (repo.parent / "unpack").rmdir()
    times["unpack"] = time.monotonic() - t0
    t0 = time.monotonic()
    say(f"git init + add + commit of {repo}")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "gc.auto", "0")
    # -f: Debian's .gitignore ignores the whole top level (its packaging repository holds no upstream files).
    git(repo, "add", "-A", "-f")
    git(repo, "commit", "-q", "-m", f"{tarball.name} as Debian ships it")
    times["git"] = time.monotonic() - t0
    for i, (subject, rel, old, new) in enumerate(COMMITS, 1):
        f = repo / rel
        text = f.read_text()
        assert text.count(old) == 1, (rel, old)
        f.write_text(text.replace(old, new))
        git(repo, "commit", "-q", "-m", subject, "--", rel, date=i)
    return times
