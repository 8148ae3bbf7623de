"""CPUs: per-cpu addresses, the online mask, the task each CPU runs, and
which gdb thread holds which CPU's registers.

QEMU's gdbstub shows one thread per vCPU, ids 1..N. The kernel's own KGDB
(kernel/debug/gdbstub.c) shows one thread per task, with the pid as its id,
plus a "shadowCPU<n>" thread per CPU whose id -(n + 2) reaches gdb as a
32-bit number; a task's registers are those its CPU had when KGDB stopped it.
"""

from __future__ import annotations

import gdb

from .cache import cached, per_stop
from .debuginfo import has_symbol, offsetof, symbol_address
from .memory import read, u64
from .tasks import read_task


def nr_cpu_ids() -> int:
    return cached("nr_cpu_ids", lambda: int(gdb.parse_and_eval("nr_cpu_ids")))


def per_cpu_offsets() -> list[int]:
    def get():
        n = nr_cpu_ids()
        raw = read(symbol_address("__per_cpu_offset"), 8 * n)
        return [int.from_bytes(raw[i * 8:i * 8 + 8], "little") for i in range(n)]
    return per_stop("pcpu", get)


def per_cpu_addr(addr: int, cpu: int) -> int:
    """Address of ``cpu``'s copy of the per-cpu variable at ``addr`` (an
    offset in .data..percpu: kd-symbol-file leaves that section unrelocated)."""
    offs = per_cpu_offsets()
    if not 0 <= cpu < len(offs):
        raise gdb.GdbError(f"no CPU {cpu} (nr_cpu_ids is {len(offs)})")
    return (addr + offs[cpu]) & (2**64 - 1)


def cpumask_bits(symbol: str) -> list[int]:
    n = nr_cpu_ids()
    raw = read(symbol_address(symbol), (n + 63) // 64 * 8)
    bits = int.from_bytes(raw, "little")
    return [c for c in range(n) if bits >> c & 1]


def online_cpus() -> list[int]:
    return per_stop("online", lambda: cpumask_bits("__cpu_online_mask"))


def current_task_addr(cpu: int) -> int:
    """``struct task_struct *`` running on ``cpu``."""
    # Since v6.2 current_task lives in struct pcpu_hot; before, its own per-cpu variable.
    if has_symbol("pcpu_hot"):
        addr = symbol_address("pcpu_hot") + offsetof("struct pcpu_hot", "current_task")
    else:
        addr = symbol_address("current_task")
    return u64(per_cpu_addr(addr, cpu))


def _thread_id(t) -> int:
    return t.ptid[1]  # remote targets: (pid, lwp = the stub's thread id, 0)


def threads_are_tasks() -> bool:
    """True under KGDB: thread ids are pids, not vCPUs."""
    return per_stop("kgdb-threads", lambda: any(
        not 1 <= _thread_id(t) <= nr_cpu_ids() for t in gdb.selected_inferior().threads()))


def kgdb_master_cpu() -> int:
    """The CPU that entered KGDB (debug_core.c's kgdb_active; -1 when none)."""
    v = int(gdb.parse_and_eval("kgdb_active.counter"))
    return v if v >= 0 else 0


def _cpu_running_pid(pid: int) -> int | None:
    for cpu in online_cpus():
        if read_task(current_task_addr(cpu)).pid == pid:
            return cpu
    return None


def selected_cpu() -> int:
    """The CPU whose registers gdb shows for the selected thread."""
    t = gdb.selected_thread()
    if t is None:
        return 0
    tid = _thread_id(t)
    if not threads_are_tasks():
        return tid - 1
    # KGDB: the CPU running the selected task; for a shadow thread (or a task
    # not on a CPU) gdb shows the registers of the CPU that entered KGDB.
    cpu = _cpu_running_pid(tid) if 0 < tid < 2**31 else None
    return kgdb_master_cpu() if cpu is None else cpu


def cpu_thread(cpu: int):
    """The gdb thread that has ``cpu``'s registers."""
    if not threads_are_tasks():
        want = cpu + 1
    else:
        want = read_task(current_task_addr(cpu)).pid
        if want == 0:
            # Its shadow thread's id does not come back to KGDB as the
            # negative number it was (gdb sends it as 32 bits unsigned).
            raise gdb.GdbError(f"KGDB gives no thread for CPU {cpu}: it runs its idle task (pid 0)")
    for t in gdb.selected_inferior().threads():
        if _thread_id(t) == want:
            return t
    raise gdb.GdbError(f"gdb has no thread for CPU {cpu}")
