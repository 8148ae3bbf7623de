"""A cpio "newc" writer: the format the kernel unpacks as its initramfs.

Pure: entries in, bytes out. Deterministic (mtime 0, inode numbers in order)
so the same inputs give the same archive and the build cache can trust it.
See Documentation/driver-api/early-userspace/buffer-format.rst.
"""

from __future__ import annotations

import gzip
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    path: str  # inside the archive, no leading slash
    mode: int  # full st_mode, file type included
    data: bytes = b""  # file contents or symlink target
    rdev: tuple[int, int] = (0, 0)


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


@dataclass
class Archive:
    """An ordered set of entries; parents are added before their children."""

    entries: dict[str, Entry] = field(default_factory=dict)

    @staticmethod
    def _norm(path: str) -> str:
        p = str(PurePosixPath("/", path)).lstrip("/")
        if not p or ".." in PurePosixPath(p).parts:
            raise ValueError(f"bad archive path {path!r}")
        return p

    def _parents(self, path: str) -> None:
        parent = PurePosixPath(path).parent
        if str(parent) not in (".", ""):
            self.add_dir(str(parent))

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        path = self._norm(path)
        if path in self.entries:
            return
        self._parents(path)
        self.entries[path] = Entry(path, stat.S_IFDIR | mode)

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = self._norm(path)
        self._parents(path)
        self.entries[path] = Entry(path, stat.S_IFREG | (mode & 0o7777), data)

    def add_symlink(self, path: str, target: str) -> None:
        path = self._norm(path)
        self._parents(path)
        self.entries[path] = Entry(path, stat.S_IFLNK | 0o777, target.encode())

    def add_node(self, path: str, kind: str, major: int, minor: int, mode: int = 0o600) -> None:
        path = self._norm(path)
        self._parents(path)
        ftype = stat.S_IFCHR if kind == "c" else stat.S_IFBLK
        self.entries[path] = Entry(path, ftype | mode, rdev=(major, minor))

    def names(self) -> list[str]:
        return list(self.entries)

    def to_cpio(self) -> bytes:
        out = bytearray()
        for ino, e in enumerate(self.entries.values(), start=1):
            _write_entry(out, ino, e)
        _write_entry(out, 0, Entry(TRAILER, 0))
        return bytes(out)

    def to_cpio_gz(self, level: int = 6) -> bytes:
        return gzip.compress(self.to_cpio(), compresslevel=level, mtime=0)


def _write_entry(out: bytearray, ino: int, e: Entry) -> None:
    name = e.path.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(e.mode) else 1
    fields = (ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.rdev[0], e.rdev[1], len(name), 0)
    hdr = b"070701" + b"".join(b"%08X" % v for v in fields)
    out += hdr + name + b"\0" * _pad4(len(hdr) + len(name))
    out += e.data + b"\0" * _pad4(len(e.data))


def concat(parts: list[bytes]) -> bytes:
    """Join archives (compressed or not) the way the kernel accepts them.

    Each member after the first must start on a 4-byte boundary, or the
    kernel reports "invalid magic at start of compressed archive" and drops
    the rest; zero padding between members is skipped by its unpacker.
    """
    out = bytearray()
    for p in parts:
        out += b"\0" * _pad4(len(out))
        out += p
    return bytes(out)


def _members(data: bytes) -> Iterator[tuple[str, int, bytes]]:
    """(name, mode, content) of each member of an uncompressed newc archive."""
    off = 0
    while off + 110 <= len(data):
        if data[off : off + 6] not in (b"070701", b"070702"):
            # zero padding between concatenated archives
            if data[off] == 0:
                off += 4
                continue
            raise ValueError(f"bad cpio magic at offset {off}")
        f = [int(data[off + 6 + 8 * i : off + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name = data[off + 110 : off + 110 + namesize - 1].decode()
        off += 110 + namesize
        off += _pad4(110 + namesize)
        content = data[off : off + size]
        off += size + _pad4(size)
        if name != TRAILER:
            yield name, mode, content


def list_cpio(data: bytes) -> list[tuple[str, int, int]]:
    """(name, mode, size) of each member of an uncompressed newc archive."""
    return [(name, mode, len(content)) for name, mode, content in _members(data)]


def read_member(data: bytes, name: str) -> bytes:
    """The content of member ``name`` of an uncompressed newc archive."""
    for n, _, content in _members(data):
        if n == name:
            return content
    raise KeyError(name)
