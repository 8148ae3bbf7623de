import gzip
import lzma
import struct

import pytest

from kdebug import elf


def make_elf(build_id: bytes, *, bits=64) -> bytes:
    """A minimal ELF64 with one PT_NOTE holding an Xen note and a GNU build-id."""
    def note(name: bytes, ntype: int, desc: bytes) -> bytes:
        n = name + b"\0"
        pad = lambda b: b + b"\0" * ((4 - len(b) % 4) % 4)  # noqa: E731
        return struct.pack("<III", len(n), len(desc), ntype) + pad(n) + pad(desc)

    notes = note(b"Xen", 6, b"linux\0") + note(b"GNU", 3, build_id)
    phoff = 64
    off = phoff + 56
    eh = bytearray(64)
    eh[:4] = b"\x7fELF"
    eh[4], eh[5], eh[6] = 2, 1, 1
    struct.pack_into("<HHIQQQIHHHHHH", eh, 16, 2, 62, 1, 0, phoff, 0, 0, 64, 56, 1, 64, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 4, 4, off, 0, 0, len(notes), len(notes), 4)
    return bytes(eh) + ph + notes


def make_bzimage(payload: bytes, release=b"6.9.0-test (me@host) #1") -> bytes:
    setup_sects = 1
    img = bytearray(512 * (setup_sects + 1))
    img[0x1F1] = setup_sects
    img[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", img, 0x206, 0x20F)
    struct.pack_into("<H", img, 0x20E, 0x300 - 0x200)
    img[0x300 : 0x300 + len(release) + 1] = release + b"\0"
    struct.pack_into("<II", img, 0x248, 16, len(payload))
    return bytes(img) + b"\0" * 16 + payload + b"\0" * 8


BID = bytes.fromhex("3b43fad5034874490492495d552c0af6a5fab235")


def test_build_id_from_elf_note():
    assert elf.elf_build_id(elf.bytes_reader(make_elf(BID))) == BID.hex()


def test_notes_listed_in_order():
    notes = list(elf.elf_notes(elf.bytes_reader(make_elf(BID))))
    assert [(n.name, n.type) for n in notes] == [("Xen", 6), ("GNU", 3)]


@pytest.mark.parametrize("compress,name", [
    (lambda d: gzip.compress(d, mtime=0), "gzip"),
    (lambda d: lzma.compress(d, format=lzma.FORMAT_XZ), "xz"),
])
def test_bzimage_build_id(compress, name):
    img = make_bzimage(compress(make_elf(BID)))
    info = elf.parse_bzimage(img)
    assert info.compression == name
    assert info.release == "6.9.0-test"
    assert elf.bzimage_build_id(img) == BID.hex()


def test_lz4_legacy_payload():
    import lz4.block

    data = make_elf(BID)
    block = lz4.block.compress(data, store_size=False)
    payload = struct.pack("<I", 0x184C2102) + struct.pack("<I", len(block)) + block + struct.pack("<I", len(data))
    assert elf.bzimage_build_id(make_bzimage(payload)) == BID.hex()


def test_not_elf_and_not_bzimage():
    with pytest.raises(elf.FormatError):
        elf.parse_elf_header(elf.bytes_reader(b"\0" * 100))
    with pytest.raises(elf.FormatError, match="HdrS"):
        elf.parse_bzimage(b"\0" * 4096)


def test_corrupt_payload_is_a_format_error():
    img = make_bzimage(b"\x1f\x8b" + b"\xff" * 100)
    with pytest.raises(elf.FormatError):
        elf.bzimage_vmlinux(img)
