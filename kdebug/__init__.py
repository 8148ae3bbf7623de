"""kdebug: Linux kernel debugging one command away."""

__version__ = "0.1.0"

