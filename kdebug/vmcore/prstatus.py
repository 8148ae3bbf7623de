"""The CPUs' registers a dump keeps in its NT_PRSTATUS notes (pure: standard
library only), read without any debug info.

kdump's crashing kernel saves each CPU's registers at the crash
(crash_save_cpu(), kernel/crash_core.c) as ``struct elf_prstatus`` notes, in
CPU order, with ``pr_pid`` the task that ran there; the crashing CPU's are
the registers of the oops when the oops started kdump (crash_kexec(regs)),
else those of __crash_kexec() itself. QEMU's dump-guest-memory writes one
note per vCPU, in vCPU order, with the registers where the vCPU stopped.
An ELF dump holds them in its PT_NOTE segment; makedumpfile's
kdump-compressed format copies that segment into its sub-header
(``offset_note``/``size_note``, header_version >= 4).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from kdebug import elf

NT_PRSTATUS = 1
#: struct elf_prstatus (x86-64): pr_info (12), pr_cursig (2), pad, pr_sigpend,
#: pr_sighold (8 each), then pr_pid at 32, and pr_reg (struct user_regs_struct)
#: at 112 after four struct timevals.
_PR_PID = 32
_PR_REG = 112
#: struct user_regs_struct (arch/x86/include/asm/user_64.h), in order.
X86_64_REGS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
               "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds",
               "es", "fs", "gs")
_DDH_SIZE = 464
_DDH_BLOCK = 428  # disk_dump_header.block_size


@dataclass(frozen=True)
class CpuRegisters:
    """One NT_PRSTATUS note: the ``index``-th, which is CPU ``index``'s."""

    index: int
    pid: int
    regs: dict[str, int]

    @property
    def pc(self) -> int:
        return self.regs.get("rip", 0)

    @property
    def kernel_mode(self) -> bool:
        """CS has RPL 0: the CPU was running the kernel."""
        return self.regs.get("cs", 3) & 3 == 0


def parse_prstatus(notes) -> list[CpuRegisters]:
    """x86-64 NT_PRSTATUS notes (name "CORE") among ``notes``, in order."""
    out = []
    for n in notes:
        if n.name != "CORE" or n.type != NT_PRSTATUS or len(n.desc) < _PR_REG + 8 * len(X86_64_REGS):
            continue
        (pid,) = struct.unpack_from("<i", n.desc, _PR_PID)
        values = struct.unpack_from(f"<{len(X86_64_REGS)}Q", n.desc, _PR_REG)
        out.append(CpuRegisters(len(out), pid, dict(zip(X86_64_REGS, values, strict=True))))
    return out


def dump_registers(path: Path, fmt: str) -> list[CpuRegisters]:
    """The registers of every CPU an ELF or kdump-compressed dump recorded
    ([] when it recorded none, or for another format)."""
    with open(path, "rb") as f:
        read_at = elf.file_reader(f)
        if fmt == "elf":
            return parse_prstatus(elf.elf_notes(read_at))
        if fmt != "kdump":
            return []
        head = read_at(0, _DDH_SIZE)
        (version,) = struct.unpack_from("<i", head, 8)
        (block,) = struct.unpack_from("<i", head, _DDH_BLOCK)
        if version < 4 or block <= 0:
            return []
        off, size = struct.unpack_from("<qQ", read_at(block, 64), 48)
        if off <= 0 or not 0 < size < (16 << 20):
            return []
        return parse_prstatus(elf.iter_notes(read_at(off, size)))
