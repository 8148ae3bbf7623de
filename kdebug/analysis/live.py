"""drgn on a running kdebug guest: its physical memory read from QEMU on the
host (kdebug.guest.memory), its VMCOREINFO and KASLR offset read through the
monitor (kdebug.guest.introspect). Nothing runs in the guest, and it works
while gdb holds the guest stopped."""

from __future__ import annotations

import tempfile
from pathlib import Path

import drgn

from kdebug.analysis.program import load_kernel_debug_info
from kdebug.errors import DebuggerError, GuestError
from kdebug.guest.introspect import kaslr_offset_from_qmp, read_vmcoreinfo
from kdebug.guest.memory import GuestMemory, open_guest_memory
from kdebug.guest.qmp import Qmp

X86_64 = drgn.Platform(drgn.Architecture.X86_64,
                       drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN)


def open_live(qmp_socket: Path, qemu_pid: int, vmlinux: Path,
              module_debug_dir: Path | None = None) -> tuple[drgn.Program, list[str]]:
    """A live drgn program over the guest behind ``qmp_socket`` (QEMU ``qemu_pid``)."""
    with Qmp(qmp_socket) as q, tempfile.TemporaryDirectory(prefix="kdebug-live-") as tmp:
        offset = kaslr_offset_from_qmp(q, vmlinux)
        vmcoreinfo, gpa = read_vmcoreinfo(q, vmlinux, offset, Path(tmp) / "vmcoreinfo")
        mem = open_guest_memory(q, qemu_pid, (gpa, vmcoreinfo))
    prog = drgn.Program(X86_64)
    try:
        prog.set_linux_kernel_custom(vmcoreinfo, True)
    except ValueError as e:
        raise DebuggerError(f"drgn refused the guest's vmcoreinfo: {e}") from None
    for r in mem.ranges:
        prog.add_memory_segment(r.phys, r.size, _reader(mem), physical=True)
    prog.cache["kdebug.guest_memory"] = mem  # keeps the fd as long as the program
    return prog, load_kernel_debug_info(prog, vmlinux, module_debug_dir, f"the guest of QEMU {qemu_pid}")


def _reader(mem: GuestMemory):
    def read(address: int, count: int, _offset: int, _physical: bool) -> bytes:
        try:
            return mem.read(address, count)
        except (GuestError, OSError) as e:
            raise drgn.FaultError(str(e), address) from None
    return read
