"""Building the tested commit (adapter): an out-of-tree module with the
kernel's own Kbuild (``make -C <kernel build dir> M=<worktree>``) or the
user's ``--build CMD``; what the reproducer needs is copied out of the
worktree per commit, so a commit built once is never built again."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.bisect.verdict import one_line
from kdebug.errors import ToolMissing

BUILD_TIMEOUT = 1800.0
DONE = "built.json"


@dataclass
class Built:
    ok: bool
    seconds: float | None  # None: taken from the cache
    files: dict[str, Path] = field(default_factory=dict)  # guest path -> host file
    tail: str = ""  # the build's last words, when it failed
    tree: Path | None = None  # a kernel history's step: the built tree to boot (kdebug.kernel.tree_kernel)


def module_command(headers: Path, worktree: Path) -> list[str]:
    return ["make", "-C", str(headers), f"M={worktree}", "modules"]


def build(worktree: Path, store: Path, outputs: dict[str, Path], *, headers: Path | None,
          command: str | None, timeout: float = BUILD_TIMEOUT) -> Built:
    """Build the commit checked out in ``worktree``; ``outputs`` maps guest
    paths to files relative to the worktree. ``store``: this commit's own directory."""
    done = store / DONE
    if done.is_file():
        meta = json.loads(done.read_text())
        files = {g: store / "files" / str(i) / Path(rel).name for i, (g, rel) in enumerate(outputs.items())}
        if meta.get("ok") is False:
            return Built(False, None, tail=meta.get("tail", ""))
        if all(f.is_file() for f in files.values()):
            return Built(True, None, files)
    argv = ["sh", "-c", command] if command else module_command(headers, worktree)
    if shutil.which(argv[0]) is None:
        raise ToolMissing(f"{argv[0]} not found", hint="apt-get install make gcc")
    store.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(store / "build.log", "w") as log:
        try:
            r = subprocess.run(argv, cwd=worktree, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
            status = r.returncode
        except subprocess.TimeoutExpired:
            status = None
    seconds = time.monotonic() - t0
    words = (store / "build.log").read_text(errors="replace").strip().splitlines()
    if status != 0:
        tail = f"took over {timeout:.0f} s" if status is None else one_line(" | ".join(words[-2:]), 200)
        return _failed(done, seconds, tail or f"status {status}")
    files = {}
    for i, (guest, rel) in enumerate(outputs.items()):
        src = worktree / rel
        if not src.is_file():
            return _failed(done, seconds, f"the build made no {rel}")
        dest = store / "files" / str(i) / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        files[guest] = dest
    done.write_text(json.dumps({"ok": True, "seconds": seconds}))
    return Built(True, seconds, files)


def _failed(done: Path, seconds: float, tail: str) -> Built:
    done.write_text(json.dumps({"ok": False, "seconds": seconds, "tail": tail}))
    return Built(False, seconds, tail=tail)
