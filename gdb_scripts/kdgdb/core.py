"""What every kd- command needs: target checks, bulk reads, cached offsets,
per-cpu addresses, one-line errors.

Types and offsets are cached until a symbol file changes
(gdb.events.new_objfile / clear_objfiles); per-stop data (the per-cpu offset
table) until the target runs again.
"""

from __future__ import annotations

import argparse
import os
import shlex

import gdb

from kdebug.decode.physmap import DEFAULT_PAGE_OFFSET, PhysMap
from kdebug.decode.structs import Field, bitfield
from kdebug.errors import KdebugError

_types: dict = {}
_stop: dict = {}


def _forget_types(_event=None) -> None:
    _types.clear()
    _stop.clear()


def _forget_stop(_event=None) -> None:
    _stop.clear()


gdb.events.new_objfile.connect(_forget_types)
gdb.events.clear_objfiles.connect(_forget_types)
gdb.events.cont.connect(_forget_stop)


def cached(key, compute):
    """Per-objfile cache (types, offsets, layouts)."""
    try:
        return _types[key]
    except KeyError:
        v = _types[key] = compute()
        return v


def per_stop(key, compute):
    try:
        return _stop[key]
    except KeyError:
        v = _stop[key] = compute()
        return v


# --- target -------------------------------------------------------------------

def require_stopped() -> None:
    """One-line errors instead of tracebacks when there is nothing to read."""
    if gdb.selected_inferior().pid == 0 or gdb.selected_thread() is None:
        raise gdb.GdbError("not connected to a kernel (use `kdebug attach`, or `target remote HOST:PORT`)")
    if gdb.selected_thread().is_running():
        raise gdb.GdbError("the kernel is running: interrupt it first (Ctrl-C)")
    try:
        gdb.lookup_type("struct task_struct")
    except gdb.error:
        raise gdb.GdbError("no kernel symbols (use `kd-symbol-file VMLINUX --offset N`)") from None


_ram: dict = {"fd": None, "path": None, "base": 0, "size": None, "hits": 0, "misses": 0}


def use_ram_file(path: str | None, base: int = 0, size: int | None = None) -> None:
    """Read linear kernel memory from guest RAM on the host instead of the
    gdbstub: QEMU's RAM file, or its /proc/PID/mem where guest-physical 0 is
    at ``base`` (``size`` bytes of linear RAM)."""
    if _ram["fd"] is not None:
        os.close(_ram["fd"])
    _ram.update(fd=None, path=None, base=0, size=None, hits=0, misses=0)
    _types.pop("physmap", None)
    _stop.clear()
    if path:
        _ram["fd"] = os.open(path, os.O_RDONLY)
        _ram.update(path=path, base=base, size=size)


def ram_status() -> dict:
    return dict(_ram)


def _physmap():
    def build():
        def u64_stub(name):
            a = symbol_address(name)
            return int.from_bytes(gdb.selected_inferior().read_memory(a, 8).tobytes(), "little")

        page_offset = u64_stub("page_offset_base") if has_symbol("page_offset_base") else DEFAULT_PAGE_OFFSET
        return PhysMap(page_offset=page_offset, phys_base=u64_stub("phys_base"),
                       image_start=symbol_address("_text"), image_end=symbol_address("_end"),
                       ram_bytes=_ram["size"] or os.fstat(_ram["fd"]).st_size)
    return cached("physmap", build)


def read(addr: int, size: int) -> bytes:
    """``size`` bytes of kernel memory at ``addr``: from QEMU's RAM file when
    `kd-memory` set one and the range is linear RAM, else over the gdbstub."""
    if _ram["fd"] is not None:
        off = _physmap().offset(addr, size)
        if off is not None:
            data = os.pread(_ram["fd"], size, _ram["base"] + off)
            if len(data) == size:
                _ram["hits"] += 1
                return data
        _ram["misses"] += 1
    try:
        return gdb.selected_inferior().read_memory(addr, size).tobytes()
    except gdb.MemoryError:
        raise gdb.GdbError(f"cannot read {size} bytes at {addr:#x}") from None


def u64(addr: int) -> int:
    return int.from_bytes(read(addr, 8), "little")


# --- types and symbols --------------------------------------------------------

def lookup_type(name: str) -> gdb.Type:
    """gdb type by C name ("struct task_struct", "unsigned long"), cached."""
    def get():
        try:
            return gdb.lookup_type(name)
        except gdb.error:
            raise gdb.GdbError(f"no type {name} in the symbols") from None
    return cached(("type", name), get)


def _member_bits(t: gdb.Type, path: str):
    """(bit offset, field) of a dotted member path, anonymous members included."""
    bits = 0
    f = None
    for part in path.split("."):
        t = t.strip_typedefs()
        if t.code not in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
            return None
        found = _find_field(t, part)
        if found is None:
            return None
        sub, f = found
        bits += sub
        t = f.type
    return bits, f


def _field_path(t: gdb.Type, path: str):
    """(byte offset, field) of a dotted member path, anonymous members included."""
    r = _member_bits(t, path)
    return None if r is None else (r[0] // 8, r[1])


def _find_field(t: gdb.Type, name: str):
    for f in t.fields():
        if f.name == name:
            return f.bitpos, f
        if f.name is None and f.type.strip_typedefs().code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
            inner = _find_field(f.type.strip_typedefs(), name)
            if inner is not None:
                return f.bitpos + inner[0], inner[1]
    return None


def has_field(type_name: str, path: str) -> bool:
    return cached(("has", type_name, path), lambda: _field_path(lookup_type(type_name), path) is not None)


def offsetof(type_name: str, path: str) -> int:
    def get():
        r = _field_path(lookup_type(type_name), path)
        if r is None:
            raise gdb.GdbError(f"{type_name} has no member {path}")
        return r[0]
    return cached(("off", type_name, path), get)


def field_of(type_name: str, path: str) -> gdb.Field:
    def get():
        r = _field_path(lookup_type(type_name), path)
        if r is None:
            raise gdb.GdbError(f"{type_name} has no member {path}")
        return r[1]
    return cached(("field", type_name, path), get)


def sizeof(type_name: str, path: str | None = None) -> int:
    if path is None:
        return lookup_type(type_name).sizeof
    return field_of(type_name, path).type.sizeof


def symbol_address(name: str) -> int:
    def get():
        sym = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
        if sym is None:
            try:
                return int(gdb.parse_and_eval(f"&{name}").cast(gdb.lookup_type("unsigned long")))
            except gdb.error:
                raise gdb.GdbError(f"no symbol {name}") from None
        return int(sym.value().address.cast(gdb.lookup_type("unsigned long")))
    return cached(("sym", name), get)


def has_symbol(name: str) -> bool:
    def get():
        try:
            symbol_address(name)
            return True
        except gdb.GdbError:
            return False
    return cached(("hassym", name), get)


def constant(name: str) -> int:
    """An enumerator's value from the debuginfo (PIDTYPE_PID, MODULE_STATE_LIVE)."""
    return cached(("const", name), lambda: int(gdb.parse_and_eval(name)))


class GdbDebuginfo:
    """kdebug.decode's Debuginfo over gdb's types, cached per symbol file: the
    layouts of kdebug.decode are built from it, so gdb detects a kernel's
    features exactly as the drgn collectors do."""

    def member(self, type_name: str, path: str) -> Field | None:
        def get():
            try:
                t = gdb.lookup_type(type_name)
            except gdb.error:
                return None
            r = _member_bits(t, path)
            if r is None:
                return None
            bits, f = r
            if f.bitsize:
                return bitfield(0, bits, f.bitsize)
            return Field(bits // 8, f.type.sizeof)
        return cached(("member", type_name, path), get)

    def sizeof(self, type_name: str) -> int:
        return lookup_type(type_name).sizeof

    def enumerator(self, name: str) -> int | None:
        def get():
            try:
                return int(gdb.parse_and_eval(name))
            except gdb.error:
                return None
        return cached(("enum", name), get)


debuginfo = GdbDebuginfo()


# --- per-cpu -------------------------------------------------------------------

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


# --- which CPU a gdb thread is ----------------------------------------------------
# QEMU's gdbstub shows one thread per vCPU, ids 1..N. The kernel's own KGDB
# (kernel/debug/gdbstub.c) shows one thread per task, with the pid as its id,
# plus a "shadowCPU<n>" thread per CPU whose id -(n + 2) reaches gdb as a
# 32-bit number; a task's registers are those its CPU had when KGDB stopped it.

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
    from .tasks import read_task

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
        from .tasks import read_task

        want = read_task(current_task_addr(cpu)).pid
        if want == 0:
            # Its shadow thread's id does not come back to KGDB as the
            # negative number it was (gdb sends it as 32 bits unsigned).
            raise gdb.GdbError(f"KGDB gives no thread for CPU {cpu}: it runs its idle task (pid 0)")
    for t in gdb.selected_inferior().threads():
        if _thread_id(t) == want:
            return t
    raise gdb.GdbError(f"gdb has no thread for CPU {cpu}")


# --- commands -------------------------------------------------------------------

class ArgParser(argparse.ArgumentParser):
    def error(self, message):
        raise gdb.GdbError(f"{self.prog}: {message}")

    def exit(self, status=0, message=None):
        if message:
            raise gdb.GdbError(message.strip())
        raise _HelpShown()


class _HelpShown(Exception):
    pass


class Command(gdb.Command):
    """Base of kd- commands: argparse arguments, one-line errors, needs a
    stopped target unless ``needs_target`` is False."""

    name = ""
    needs_target = True

    def __init__(self):
        super().__init__(self.name, gdb.COMMAND_USER)
        self.parser = ArgParser(prog=self.name, description=(self.__doc__ or "").split("\n")[0],
                                add_help=True)
        self.arguments(self.parser)

    def arguments(self, p: ArgParser) -> None:
        pass

    def invoke(self, arg, from_tty):
        try:
            args = self.parser.parse_args(shlex.split(arg))
        except _HelpShown:
            gdb.write(self.parser.format_help())
            return
        except ValueError as e:
            raise gdb.GdbError(f"{self.name}: {e}") from None
        if self.needs_target:
            require_stopped()
        try:
            out = self.run(args)
        except KdebugError as e:
            raise gdb.GdbError(str(e)) from None
        except gdb.MemoryError as e:
            raise gdb.GdbError(f"{self.name}: {e}") from None
        if out:
            gdb.write(out if out.endswith("\n") else out + "\n")

    def run(self, args) -> str | None:
        raise NotImplementedError


def register(cls):
    cls()
    return cls
