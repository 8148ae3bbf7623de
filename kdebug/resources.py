"""The data kdebug ships: QEMU profiles, initramfs recipes, kconfig fragments,
trigger sources (``launch/``), the gdb scripts (``gdb_scripts/``) and what
runs inside crash (``crash_ext/``).

Those folders sit at the top of the checkout and are mapped into the
installed package (``kdebug.launch``, ``kdebug.gdb_scripts``,
``kdebug.crash_ext``; see pyproject.toml), so a wheel, a plain
``pip install .`` and an editable checkout all read them the same way,
through importlib.resources, never through a path worked out from a checkout.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from kdebug.errors import KdebugError

#: The shipped data folders, by their package name.
LAUNCH = "kdebug.launch"
GDB_SCRIPTS = "kdebug.gdb_scripts"
CRASH_EXT = "kdebug.crash_ext"


def data_path(package: str, *parts: str) -> Path:
    """A real filesystem path to shipped data (QEMU, gcc, crash and gdb are
    handed paths, so data inside a zip import would be of no use)."""
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        raise KdebugError(f"kdebug's data package {package} is not installed",
                          hint="reinstall kdebug (pip install kdebug, or scripts/setup.sh in a checkout)") from None
    if not isinstance(root, Path):
        raise KdebugError(f"kdebug's data package {package} is not on the filesystem ({root})",
                          hint="install kdebug from a wheel or a directory, not a zip")
    return root.joinpath(*parts)


def launch_path(*parts: str) -> Path:
    """``launch/``: QEMU profiles, initramfs recipes, kconfig fragments, trigger sources."""
    return data_path(LAUNCH, *parts)
