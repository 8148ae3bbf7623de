"""QEMU profiles: data in ``launch/profiles/*.toml``, validated on load."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from kdebug.errors import UsageError
from kdebug.resources import launch_path

PROFILE_DIR = launch_path("profiles")
_SIZE = re.compile(r"^(\d+)([KMGT]?)(?:i?B)?$", re.I)
_UNITS = {"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size_mb(text: str | int, what: str = "size") -> int:
    """'1G' -> 1024, '512M' -> 512, 2048 -> 2048 (bare numbers are MiB, as in QEMU)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text).strip())
    if not m:
        raise UsageError(f"bad {what} {text!r}: use a number with K, M or G (e.g. 1G)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()] >> 20


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    machine: str
    memory_mb: int
    cpus: int
    cmdline: tuple[str, ...]
    firmware: str | None = None  # -bios: a file in QEMU's data directory; None: QEMU's default


def load_profile(name: str = "default", directory: Path = PROFILE_DIR) -> Profile:
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.toml")))
        raise UsageError(f"unknown QEMU profile {name!r} (known: {known})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"profile {path}: {e}") from None
    unknown = set(data) - {"description", "machine", "memory", "cpus", "cmdline", "firmware"}
    if unknown:
        raise UsageError(f"profile {name}: unknown keys {', '.join(sorted(unknown))}")
    cpus = data.get("cpus", 1)
    if not isinstance(cpus, int) or cpus < 1:
        raise UsageError(f"profile {name}: cpus must be a positive integer")
    return Profile(
        name=name,
        description=str(data.get("description", "")),
        machine=str(data.get("machine", "pc")),
        memory_mb=parse_size_mb(data.get("memory", "1G"), "memory"),
        cpus=cpus,
        cmdline=tuple(str(x) for x in data.get("cmdline", [])),
        firmware=str(data["firmware"]) if data.get("firmware") else None,
    )


#: Where QEMU keeps its firmware (qemu-system-data on Debian), besides the
#: share/qemu beside the binary that runs.
FIRMWARE_DIRS = (Path("/usr/share/qemu"),)


def find_firmware(name: str | None, qemu: str | None) -> Path | None:
    """The profile's firmware file, or None (QEMU's default, SeaBIOS) when
    this QEMU does not ship it."""
    if not name:
        return None
    dirs = [Path(qemu).resolve().parent.parent / "share" / "qemu"] if qemu else []
    for d in [*dirs, *FIRMWARE_DIRS]:
        if (d / name).is_file():
            return d / name
    return None
