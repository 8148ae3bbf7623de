"""Kernel releases this machine has debug info for: the ones a worker takes."""

from __future__ import annotations

from kdebug.kernel import DEBUG_BOOT


def debug_releases() -> list[str]:
    """Releases with a debug vmlinux in /usr/lib/debug/boot, sorted."""
    return sorted(p.name.removeprefix("vmlinux-") for p in DEBUG_BOOT.glob("vmlinux-*") if p.is_file())
