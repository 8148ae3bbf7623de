"""kdebug: Linux kernel debugging one command away."""

from pathlib import Path

__version__ = "0.1.0"

#: Project root (the checkout); data such as QEMU profiles and initramfs
#: recipes live in its ``launch/`` folder, gdb code in ``gdb_scripts/``.
ROOT = Path(__file__).resolve().parent.parent
