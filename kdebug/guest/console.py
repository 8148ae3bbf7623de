"""What the guest's serial console carries besides a command's output (pure).

The kernel's console and the shell share one 8250 port (ttyS0): the kernel's
records land in a command's output, anywhere, whole. kdebug.guest.qemu
matches its shell markers through them and takes them out of the output.
"""

from __future__ import annotations

import re

#: One kernel record as the console prints it (printk timestamps on, as in
#: every kernel kdebug boots: CONFIG_PRINTK_TIME): the 8250 console writes
#: a record whole, but anywhere in a process's output, even inside a line
#: or a marker (a KERN_EMERG flood is printed at any loglevel). kdebug's
#: markers are matched across such records. A command's output keeps them:
#: on one serial line a record cannot be told from a line of the command's
#: own in the same shape (``dmesg`` prints nothing else), so taking them out
#: would take the output of ``dmesg`` too; a channel of the shell's own is
#: the real answer.
KERNEL_RECORD = r"\[ *\d+\.\d{6}\] [^\r\n]*\r*\n"
_KERNEL_RECORD = re.compile(KERNEL_RECORD)


def cuttable(marker: str) -> str:
    """A regex for ``marker`` (literal text, or ``(\\d+)`` for a number) that
    also matches it with kernel records printed into it."""
    gap = f"(?:{KERNEL_RECORD})*"
    parts = re.split(r"(\(\\d\+\))", marker)
    number = rf"(\d(?:{gap}\d)*)"  # its digits read with kernel_free()
    return gap.join(number if p == r"(\d+)" else gap.join(re.escape(c) for c in p) for p in parts if p)


def kernel_free(text: str) -> str:
    """``text`` without the kernel records printed into it (for kdebug's own
    markers, never a command's output)."""
    return _KERNEL_RECORD.sub("", text)
