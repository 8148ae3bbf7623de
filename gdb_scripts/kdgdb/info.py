"""kd-version, kd-cmdline, kd-cpus, kd-config: small facts about the kernel."""

from __future__ import annotations

import gzip

import gdb

from kdebug.kconfig import parse_kconfig

from . import core


def c_string(addr: int, limit: int = 4096) -> str:
    raw = core.read(addr, limit)
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def kernel_version() -> str:
    return c_string(core.symbol_address("linux_banner"), 512).strip()


def kernel_cmdline() -> str:
    return c_string(core.u64(core.symbol_address("saved_command_line")))


@core.register
class KdVersion(core.Command):
    """The running kernel's version banner (linux_banner)."""

    name = "kd-version"

    def run(self, a):
        return kernel_version()


@core.register
class KdCmdline(core.Command):
    """The kernel command line (saved_command_line)."""

    name = "kd-cmdline"

    def run(self, a):
        return kernel_cmdline()


@core.register
class KdCpus(core.Command):
    """Online CPUs with the task each one runs, and the one gdb has selected."""

    name = "kd-cpus"

    def run(self, a):
        from .tasks import read_task

        sel = core.selected_cpu()
        lines = [f"{'':1} {'CPU':>3}  {'TASK':18}  {'PID':>6}  COMM"]
        for cpu in core.online_cpus():
            addr = core.current_task_addr(cpu)
            t = read_task(addr)
            lines.append(f"{'*' if cpu == sel else ' '} {cpu:>3}  {addr:#018x}  {t.pid:>6}  {t.comm}")
        return "\n".join(lines)


def ikconfig() -> str:
    if not core.has_symbol("kernel_config_data"):
        raise gdb.GdbError("this kernel has no built-in config (CONFIG_IKCONFIG is off)")
    start = core.symbol_address("kernel_config_data")
    end = core.symbol_address("kernel_config_data_end")
    return core.cached("ikconfig", lambda: gzip.decompress(core.read(start, end - start)).decode("utf-8", "replace"))


@core.register
class KdConfig(core.Command):
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
