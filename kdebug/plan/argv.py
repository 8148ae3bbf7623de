"""The QEMU command line as a pure ``list[str]``, one concern per function.

Golden-tested (tests/unit/test_argv.py); ``--dry-run`` prints it.
"""

from __future__ import annotations

from kdebug.plan.plan import LaunchPlan


def _machine(p: LaunchPlan) -> list[str]:
    args = ["-machine", f"{p.machine},accel={p.accel}", "-m", str(p.memory_mb), "-smp", str(p.cpus)]
    if p.accel == "kvm":
        args += ["-cpu", "host"]
    # Under TCG the guest keeps QEMU's default CPU: QEMU 7.2's TCG corrupted
    # EFLAGS after CMPXCHG16B and broke 6.12 guests in SLUB's fast path;
    # setup installs QEMU 10 (bookworm-backports), which does not.
    return args


def _boot(p: LaunchPlan) -> list[str]:
    args = ["-bios", str(p.firmware)] if p.firmware else []
    args += ["-kernel", str(p.image), "-append", p.cmdline]
    if p.initrd:
        args += ["-initrd", str(p.initrd)]
    return args


def _display(p: LaunchPlan) -> list[str]:
    # -nodefaults: no NIC, no VGA, no floppy: a faster, quieter boot.
    return ["-nodefaults", "-display", "none", "-no-user-config"]


def _console(p: LaunchPlan) -> list[str]:
    log = f",logfile={p.console_log},logappend=off" if p.console_log else ""
    if p.interactive:
        # The user's terminal; Ctrl-A x quits, Ctrl-A c toggles the HMP monitor.
        return ["-chardev", f"stdio,id=con0,mux=on,signal=off{log}",
                "-serial", "chardev:con0", "-mon", "chardev=con0,mode=readline"]
    return ["-chardev", f"stdio,id=con0,signal=off{log}", "-serial", "chardev:con0"]


def _control(p: LaunchPlan) -> list[str]:
    args = []
    if p.gdb_port is not None:
        # Never QEMU's bare -s: it listens on every interface.
        args += ["-gdb", f"tcp:127.0.0.1:{p.gdb_port}"]
    if p.qmp_socket is not None:
        args += ["-qmp", f"unix:{p.qmp_socket},server=on,wait=off"]
    if p.freeze:
        args.append("-S")
    if p.incoming:
        # A warm start (kdebug.warm): the guest's state comes over QMP from
        # a saved file; nothing runs until then.
        args += ["-incoming", "defer"]
    return args


def _crash(p: LaunchPlan) -> list[str]:
    # panic=-1 reboots at once; -no-reboot turns that into QEMU exiting.
    args = ["-no-reboot", "-device", "vmcoreinfo"]
    if p.pvpanic:
        args += ["-device", "pvpanic", "-action", "panic=pause"]
    return args


def _storage(p: LaunchPlan) -> list[str]:
    args: list[str] = []
    for d in p.drives:
        ro = ",readonly=on" if d.readonly else ""
        args += ["-drive", f"file={d.path},if=none,id={d.id},format={d.format}{ro}",
                 "-device", f"virtio-blk-pci,drive={d.id}"]
    return args


def _serial_ports(p: LaunchPlan) -> list[str]:
    if not p.serial_ports:
        return []
    args = ["-device", "virtio-serial-pci,id=vser0"]
    for i, s in enumerate(p.serial_ports):
        if s.kind == "socket":
            dev = f"socket,id=vsp{i},path={s.path},server=on,wait=off"
        else:
            dev = f"file,id=vsp{i},path={s.path}"
        args += ["-chardev", dev, "-device", f"virtserialport,bus=vser0.0,chardev=vsp{i},name={s.name}"]
    return args


def build_argv(p: LaunchPlan) -> list[str]:
    return [
        p.qemu,
        "-name", p.name,
        *_machine(p),
        *_boot(p),
        *_display(p),
        *_console(p),
        *_control(p),
        *_crash(p),
        *_storage(p),
        *_serial_ports(p),
        *p.extra_args,
    ]
