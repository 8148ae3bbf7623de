"""The distribution package that holds a kernel release's debug vmlinux
(pure): what a report without debug info tells the user to install."""

from __future__ import annotations

#: Ubuntu's kernel flavours (its debug packages are -dbgsym, from ddebs.ubuntu.com).
_UBUNTU_FLAVOURS = ("generic", "lowlatency", "aws", "azure", "gcp", "gke", "oracle", "kvm", "ibm", "raspi")


def debug_package(release: str | None) -> str:
    """The distribution package holding the debug vmlinux of ``release``."""
    rel = release or "RELEASE"
    if ".el" in rel or ".fc" in rel:
        return f"kernel-debuginfo-{rel}"
    if rel.rsplit("-", 1)[-1] in _UBUNTU_FLAVOURS:
        return f"linux-image-unsigned-{rel}-dbgsym"
    return f"linux-image-{rel}-dbg"
