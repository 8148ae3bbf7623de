"""The printk ring buffer as PrintkRecords (drgn's get_printk_records)."""

from __future__ import annotations

import drgn
from drgn.helpers.linux.printk import get_printk_records

from kdebug.analysis.program import cached
from kdebug.model import PrintkRecord


def collect_log(prog: drgn.Program) -> list[PrintkRecord]:
    def compute():
        out = []
        for r in get_printk_records(prog):
            caller = f"T{r.caller_tid}" if r.caller_tid is not None else (
                f"C{r.caller_cpu}" if r.caller_cpu is not None else "")
            out.append(PrintkRecord(seq=r.seq, timestamp_ns=r.timestamp, level=r.level,
                                    text=r.text.decode(errors="replace"), facility=r.facility,
                                    caller=caller))
        return out

    return cached(prog, "kdebug.log", compute)


def log_lines(records: list[PrintkRecord]) -> list[str]:
    return [line for r in records for line in r.text.split("\n")]
