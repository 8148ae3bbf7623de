"""Guest-virtual to guest-physical for the kernel's linear mappings (pure).

The fast path of kd- commands: QEMU can keep guest RAM in a file that the host
maps (memory-backend-file,share=on). Slab objects (task_struct, module,
printk rings) live in the direct map and the kernel image in its own mapping;
both are linear, so no page-table walk is needed:

    direct map:   pa = va - page_offset_base
    kernel image: pa = va - __START_KERNEL_map + phys_base   (__pa_symbol)

Anything else (vmalloc, vmap'd stacks, modules) goes through the gdbstub.
"""

from __future__ import annotations

from dataclasses import dataclass

START_KERNEL_MAP = 0xFFFFFFFF80000000
DEFAULT_PAGE_OFFSET = 0xFFFF888000000000  # 4-level paging without RANDOMIZE_MEMORY
#: QEMU's pc machine keeps RAM linear in the backing file below this (the PCI
#: hole starts at 3 GiB at the lowest); above it we do not translate.
LINEAR_LIMIT = 0xC0000000


@dataclass(frozen=True)
class PhysMap:
    page_offset: int  # page_offset_base
    phys_base: int
    image_start: int  # _text
    image_end: int  # _end
    ram_bytes: int  # size of the RAM file

    def offset(self, va: int, size: int) -> int | None:
        """File offset of [va, va+size), or None when it is not linear RAM."""
        if self.image_start <= va and va + size <= self.image_end:
            # phys_base is a u64 that wraps when the physical load address
            # is below the (randomized) virtual one.
            pa = (va - START_KERNEL_MAP + self.phys_base) & (2**64 - 1)
        elif self.page_offset <= va < self.page_offset + self.ram_bytes:
            pa = va - self.page_offset
        else:
            return None
        if pa < 0 or pa + size > min(self.ram_bytes, LINEAR_LIMIT):
            return None
        return pa


def shared_ram_args(path: str, memory_mb: int) -> tuple[str, ...]:
    """QEMU arguments that put guest RAM in ``path`` (merged with -machine)."""
    return ("-object", f"memory-backend-file,id=kdram,size={memory_mb}M,mem-path={path},share=on",
            "-machine", "memory-backend=kdram")
