"""Reads that fall on memory the dump does not hold, as :class:`DumpGap`
records: where, and what the missing page held, so that a count a gap cut
short is reported as incomplete instead of as the truth."""

from __future__ import annotations

import drgn
from drgn.helpers.linux.mm import PageLRU, PageSlab, virt_to_page

from kdebug.report.model import DumpGap

#: include/linux/page-flags.h PAGE_MAPPING_ANON: the low bit of page->mapping.
PAGE_MAPPING_ANON = 0x1


def page_kind(prog: drgn.Program, address: int | None) -> str:
    """What the page at a kernel address held, from its ``struct page`` (the
    memory map is kernel data, which no filter level drops): "slab",
    "anonymous", "page cache", or "" when unknown."""
    if address is None:
        return ""
    try:
        page = virt_to_page(prog, address)
        if PageSlab(page):  # drgn follows the v6.10 page-type change itself
            return "slab"
        if page.mapping.value_() & PAGE_MAPPING_ANON:
            return "anonymous"
        if PageLRU(page):
            return "page cache"
    except (drgn.FaultError, LookupError, ValueError, AttributeError, OverflowError):
        pass
    return ""


def gap(prog: drgn.Program, section: str, error: drgn.FaultError) -> DumpGap:
    """The gap a failed read left in ``section`` of the report."""
    return DumpGap(section=section, error=str(error.message), address=error.address,
                   page=page_kind(prog, error.address))
