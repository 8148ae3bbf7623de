"""A "before" row for the benches: kdebug at an earlier commit, run as a
command from a worktree of that commit, beside the current code in the same
run (``--before REF``).

The worktree gets links to its own data folders inside its package
(``kdebug/launch`` and the like) so that, with the worktree first on the
path, the old code reads its own init, profiles and gdb scripts, not those
of the editable install of the current checkout.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ("launch", "gdb_scripts", "crash_ext")


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A worktree of ``ref`` for the time of the run."""
    with tempfile.TemporaryDirectory(prefix="kdebug-before-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), ref], check=True)
        try:
            for name in DATA:
                if (tree / name).is_dir() and not (tree / "kdebug" / name).exists():
                    (tree / "kdebug" / name).symlink_to(tree / name)
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def env_for(tree: Path) -> dict[str, str]:
    """Environment that makes ``python -m kdebug.cli.main`` run ``tree``'s code
    (run it with ``cwd=tree`` too: -m puts the working directory first)."""
    return {**os.environ, "PYTHONPATH": str(tree)}
