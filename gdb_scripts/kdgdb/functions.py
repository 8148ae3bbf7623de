"""Convenience functions: $kd_current([cpu]), $kd_task(pid),
$kd_per_cpu(var, cpu), $container_of(ptr, "type", "member")."""

from __future__ import annotations

import gdb

from .command import register, require_stopped
from .cpus import current_task_addr, per_cpu_addr, selected_cpu
from .debuginfo import lookup_type, offsetof, ulong
from .tasks import find_task


def _task_ptr(addr: int) -> gdb.Value:
    return gdb.Value(addr).cast(lookup_type("struct task_struct").pointer())


def _string(v: gdb.Value) -> str:
    if v.type.strip_typedefs().code == gdb.TYPE_CODE_ARRAY or v.type.strip_typedefs().code == gdb.TYPE_CODE_PTR:
        return v.string()
    raise gdb.GdbError("expected a string argument")


class Function(gdb.Function):
    name = ""

    def __init__(self):
        super().__init__(self.name)

    def invoke(self, *args):
        require_stopped()
        return self.call(*args)


@register
class KdCurrent(Function):
    """$kd_current([cpu]): the struct task_struct * running on cpu (default: gdb's selected CPU)."""

    name = "kd_current"

    def call(self, cpu=None):
        c = selected_cpu() if cpu is None else int(cpu)
        return _task_ptr(current_task_addr(c))


@register
class KdTask(Function):
    """$kd_task(pid): the struct task_struct * of a pid."""

    name = "kd_task"

    def call(self, pid):
        return _task_ptr(find_task(int(pid)).address)


@register
class KdPerCpu(Function):
    """$kd_per_cpu(var, cpu): cpu's copy of a per-cpu variable (var by name: "runqueues", or itself)."""

    name = "kd_per_cpu"

    def call(self, var, cpu=None):
        c = selected_cpu() if cpu is None else int(cpu)
        if var.type.strip_typedefs().code in (gdb.TYPE_CODE_ARRAY, gdb.TYPE_CODE_PTR) and \
                var.type.strip_typedefs().target().sizeof == 1 and var.address is None:
            var = gdb.parse_and_eval(_string(var))
        if var.address is None:
            raise gdb.GdbError("$kd_per_cpu: pass a per-cpu variable or its name")
        addr = per_cpu_addr(ulong(var.address), c)
        return gdb.Value(addr).cast(var.type.pointer()).dereference()


@register
class ContainerOf(Function):
    """$container_of(ptr, "type", "member"): the structure that holds *ptr as member."""

    name = "container_of"

    def call(self, ptr, type_name, member):
        t = _string(type_name)
        m = _string(member)
        off = offsetof(t, m)
        addr = ulong(ptr) - off
        return gdb.Value(addr).cast(lookup_type(t).pointer())
