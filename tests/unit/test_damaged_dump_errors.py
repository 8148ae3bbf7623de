"""drgn's errors on a damaged dump become one VmcoreError line
(kdebug.analysis.program.reading), MemoryError included: libdrgn's ENOMEM
when a damaged size or count asks it to allocate (a mutated 6.1 kdump dump
did that while its modules' debug info loaded: an internal error before)."""

from __future__ import annotations

from pathlib import Path

import drgn
import pytest

from kdebug.analysis.program import reading
from kdebug.errors import VmcoreError


@pytest.mark.parametrize(("error", "says"), [
    (MemoryError(), "a size or count in it asks for more memory than this machine has"),
    (drgn.FaultError("could not read memory", 0xffff888000001000), "could not read memory at 0xffff888000001000"),
    (drgn.BadDataError("VMCOREINFO does not contain valid swapper_pg_dir"), "does not contain valid swapper_pg_dir"),
])
def test_a_drgn_data_error_is_one_line_naming_what_was_read(error, says):
    with pytest.raises(VmcoreError) as e, reading(Path("/d/vmcore"), "the task list"):
        raise error
    assert str(e.value).startswith("/d/vmcore is damaged: drgn cannot read the task list: ") and says in str(e.value)
    assert "\n" not in str(e.value)
