"""kd-version, kd-cmdline, kd-cpus, kd-config: small facts about the kernel."""

from __future__ import annotations

import gzip

import gdb

from kdebug.kconfig import parse_kconfig

from .cache import cached
from .command import Command, register
from .cpus import current_task_addr, online_cpus, selected_cpu
from .debuginfo import has_symbol, symbol_address
from .memory import c_string, read, u64
from .tasks import read_task


def kernel_version() -> str:
    return c_string(symbol_address("linux_banner"), 512).strip()


def kernel_cmdline() -> str:
    return c_string(u64(symbol_address("saved_command_line")))


@register
class KdVersion(Command):
    """The running kernel's version banner (linux_banner)."""

    name = "kd-version"

    def records(self, a):
        return kernel_version()

    def render(self, banner, a):
        return banner


@register
class KdCmdline(Command):
    """The kernel command line (saved_command_line)."""

    name = "kd-cmdline"

    def records(self, a):
        return kernel_cmdline()

    def render(self, cmdline, a):
        return cmdline


@register
class KdCpus(Command):
    """Online CPUs with the task each one runs, and the one gdb has selected."""

    name = "kd-cpus"

    def records(self, a):
        sel = selected_cpu()
        out = []
        for cpu in online_cpus():
            addr = current_task_addr(cpu)
            t = read_task(addr)
            out.append({"cpu": cpu, "task": addr, "pid": t.pid, "comm": t.comm, "selected": cpu == sel})
        return out

    def render(self, cpus, a):
        lines = [f"{'':1} {'CPU':>3}  {'TASK':18}  {'PID':>6}  COMM"]
        for c in cpus:
            mark = "*" if c["selected"] else " "
            lines.append(f"{mark} {c['cpu']:>3}  {c['task']:#018x}  {c['pid']:>6}  {c['comm']}")
        return "\n".join(lines)


def ikconfig() -> str:
    if not has_symbol("kernel_config_data"):
        raise gdb.GdbError("this kernel has no built-in config (CONFIG_IKCONFIG is off)")
    start = symbol_address("kernel_config_data")
    end = symbol_address("kernel_config_data_end")
    return cached("ikconfig", lambda: gzip.decompress(read(start, end - start)).decode("utf-8", "replace"))


@register
class KdConfig(Command):
    """The kernel's own .config (IKCONFIG): all of it, or the named options.

    Usage: kd-config [OPTION]...   e.g. kd-config KGDB DEBUG_INFO"""

    name = "kd-config"

    def arguments(self, p):
        p.add_argument("options", nargs="*")

    def run(self, a):
        text = ikconfig()
        if not a.options:
            return text
        cfg = parse_kconfig(text)
        return "\n".join(f"CONFIG_{o.removeprefix('CONFIG_')}={cfg.get(o) or 'n'}" for o in a.options)
