"""What the guest's serial console carries besides a command's output (pure).

The kernel's console and the shell share one 8250 port (ttyS0): the kernel's
records land anywhere in what the shell prints, whole. kdebug's markers are
matched across them (:func:`cuttable`); a command's output is printed
escaped so that no line of its own can look like a record
(:data:`ESCAPE_OUTPUT`), and :func:`command_output` takes the records out
and undoes the escape.
"""

from __future__ import annotations

import re

#: One kernel record as the console prints it: a driven guest boots with
#: printk.time=1, so every record (each line of a multi-line one) starts
#: with its timestamp, and with CONFIG_PRINTK_CALLER its caller id after it.
#: The 8250 console writes a record whole, under the port lock, but anywhere
#: in a process's output, even inside a line or a marker (a KERN_EMERG flood
#: is printed at any loglevel).
KERNEL_RECORD = r"\[ *\d+\.\d{6}\](?:\[ *[TC]\d+\])? [^\r\n]*\r*\n"
_KERNEL_RECORD = re.compile(KERNEL_RECORD)

#: The guest shell's filter for a command's output (busybox or any POSIX
#: sed): "\" becomes "\\" and "[" becomes "\(", so the output has no "[" and
#: every "[" on the console between kdebug's markers starts a kernel record.
#: Lines shaped like records (`dmesg` prints nothing else) stay the
#: command's. sed keeps a last line without its newline, and NUL bytes.
ESCAPE_OUTPUT = r"sed -e 's/\\/&&/g' -e 's/\[/\\(/g'"
#: A kernel record inside escaped output: from its "[" to the end of its line.
_RECORD_IN_ESCAPED = re.compile(r"\[[^\n]*\n")
_ESCAPED = re.compile(r"\\([\\(])")


def cuttable(marker: str) -> str:
    """A regex for ``marker`` (literal text, or ``(\\d+)`` for a number) that
    also matches it with kernel records printed into it."""
    gap = f"(?:{KERNEL_RECORD})*"
    parts = re.split(r"(\(\\d\+\))", marker)
    number = rf"(\d(?:{gap}\d)*)"  # its digits read with kernel_free()
    return gap.join(number if p == r"(\d+)" else gap.join(re.escape(c) for c in p) for p in parts if p)


def printed_marker(marker: str) -> str:
    """A regex for ``marker`` as ``echo`` printed it, not as the typed line's
    echo shows it (after "echo ", before ";"). Not anchored at a line's
    start: the tty echoes a command typed ahead of the setup's `stty -echo`
    until that runs, and the echo, cut where it took effect, can end without
    a newline just before the marker (2 of 120 first commands of a long flood test, under load)."""
    # Records can also come between the marker and its line's end, or
    # between the tty's CR and LF.
    return rf"(?<!echo ){cuttable(marker)}(?:\r|{KERNEL_RECORD})*\n"


def kernel_free(text: str) -> str:
    """``text`` without the kernel records printed into it (for kdebug's own
    markers; a command's output goes through :func:`command_output`)."""
    return _KERNEL_RECORD.sub("", text)


def kernel_records(text: str) -> list[str]:
    """The kernel records printed into ``text``, in order."""
    return _KERNEL_RECORD.findall(text)


def command_output(console: str) -> str:
    """A command's own output from the console text between kdebug's
    markers: its output as :data:`ESCAPE_OUTPUT` printed it, with kernel
    records among it. The records are dropped (the console log keeps them),
    the tty's CRs too, and the escape undone."""
    text = _RECORD_IN_ESCAPED.sub("", console).replace("\r", "")
    return _ESCAPED.sub(lambda m: "[" if m.group(1) == "(" else "\\", text)
