"""Virtual to RAM-file offsets for the fast read path."""

from kdebug.decode.physmap import LINEAR_LIMIT, PhysMap, shared_ram_args

PO = 0xFFFF9A0000000000  # a randomized page_offset_base
# Text linked at 0xffffffff81000000 (pa 0x1000000), moved 0x35e00000 virtually
# and loaded at pa 0x5000000: phys_base = 0x5000000 - 0x36e00000 wraps as a u64.
PHYS_BASE = (0x5000000 - 0x36E00000) & (2**64 - 1)
M = PhysMap(page_offset=PO, phys_base=PHYS_BASE, image_start=0xFFFFFFFFB6E00000,
            image_end=0xFFFFFFFFB9000000, ram_bytes=1 << 30)


def test_direct_map_and_image():
    assert M.offset(PO + 0x1234, 16) == 0x1234
    # __pa_symbol: va - __START_KERNEL_map + phys_base
    assert M.offset(0xFFFFFFFFB6E00000, 8) == 0x5000000  # _text
    assert M.offset(0xFFFFFFFFB7000000, 8) == 0x5200000


def test_everything_else_goes_to_the_gdbstub():
    assert M.offset(0xFFFFC90000000000, 8) is None  # vmalloc (stacks)
    assert M.offset(0xFFFFFFFFC0000000, 8) is None  # modules, past _end
    assert M.offset(PO + (1 << 30) - 4, 8) is None  # runs off the end of RAM
    big = PhysMap(PO, 0, 0, 0, 4 << 30)
    assert big.offset(PO + LINEAR_LIMIT + 4096, 8) is None  # above QEMU's PCI hole: not linear
    assert big.offset(0x1000, 8) is None  # user addresses


def test_qemu_args():
    args = shared_ram_args("/dev/shm/x.ram", 1024)
    assert args == ("-object", "memory-backend-file,id=kdram,size=1024M,mem-path=/dev/shm/x.ram,share=on",
                    "-machine", "memory-backend=kdram")
