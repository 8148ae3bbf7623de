# ruff: noqa: E501  (modules.dep lines are data)
from kdebug.initramfs.modules import modname, parse_builtin, parse_modules_dep, resolve

DEP = """\
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/misc/pvpanic/pvpanic-mmio.ko.xz: kernel/drivers/misc/pvpanic/pvpanic.ko.xz
kernel/drivers/misc/pvpanic/pvpanic.ko.xz:
"""


def test_names_normalised():
    assert modname("kernel/drivers/misc/pvpanic/pvpanic-mmio.ko.xz") == "pvpanic_mmio"


def test_dependencies_load_first_once():
    res = resolve(["virtio_pci", "virtio-console", "pvpanic-mmio"], parse_modules_dep(DEP), set())
    o = [p.rsplit("/", 1)[-1] for p in res.ordered]
    assert o.index("virtio_ring.ko") < o.index("virtio.ko") < o.index("virtio_pci.ko")
    assert o.index("virtio_pci_legacy_dev.ko") < o.index("virtio_pci.ko")
    assert o.index("pvpanic.ko.xz") < o.index("pvpanic-mmio.ko.xz")
    assert len(o) == len(set(o)) == 8
    assert res.missing == []


def test_builtin_and_missing():
    res = resolve(["ext4", "nonexistent"], parse_modules_dep(DEP), parse_builtin("kernel/fs/ext4/ext4.ko\n"))
    assert res.builtin == ["ext4"]
    assert res.missing == ["nonexistent"]


def test_modules_order_before_and_after_v6_2():
    from kdebug.initramfs.modules import parse_modules_order

    # 6.1 lists .ko; since f65a486821cf (v6.2) .o; an installed copy prefixes kernel/
    assert parse_modules_order("drivers/char/virtio_console.ko\ndrivers/block/virtio_blk.ko\n") == [
        "drivers/char/virtio_console", "drivers/block/virtio_blk"]
    assert parse_modules_order("drivers/char/virtio_console.o\n\nkernel/drivers/misc/pvpanic/pvpanic.ko\n"
                               "drivers/char/virtio_console.o\n") == [
        "drivers/char/virtio_console", "drivers/misc/pvpanic/pvpanic"]


ALIAS = """\
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000003v* virtio_console
alias of:N*T*Cqemu,pvpanic-mmio pvpanic_mmio
alias acpi*:QEMU0001:* pvpanic_mmio
alias fs-ext4 ext4
"""


def test_device_guards_follow_the_devices_a_driver_serves():
    from kdebug.initramfs.modules import device_guards, parse_modules_alias

    dep, aliases = parse_modules_dep(DEP), parse_modules_alias(ALIAS)
    assert aliases["pvpanic_mmio"] == ["of:N*T*Cqemu,pvpanic-mmio", "acpi*:QEMU0001:*"]
    names = ["virtio_pci", "virtio_console", "pvpanic-mmio"]
    g = {p.rsplit("/", 1)[-1]: v for p, v in
         device_guards(names, set(), resolve(names, dep, set()).ordered, dep, aliases).items()}
    assert g["virtio_pci.ko"] == g["virtio_pci_legacy_dev.ko"] == ("pci:v00001AF4d*sv*sd*bc*sc*i*",)
    assert g["virtio_console.ko"] == ("virtio:d00000003v*",)
    # a dependency serves every module that needs it
    assert set(g["virtio.ko"]) == {"pci:v00001AF4d*sv*sd*bc*sc*i*", "virtio:d00000003v*"}
    assert g["pvpanic.ko.xz"] == g["pvpanic-mmio.ko.xz"] == ("of:N*T*Cqemu,pvpanic-mmio", "acpi*:QEMU0001:*")


def test_device_guards_load_always_what_the_user_named_and_what_it_needs():
    from kdebug.initramfs.modules import device_guards, parse_modules_alias

    dep, aliases = parse_modules_dep(DEP), parse_modules_alias(ALIAS)
    names = ["virtio_pci", "virtio_console"]
    g = {p.rsplit("/", 1)[-1]: v for p, v in
         device_guards(names, {"virtio_console"}, resolve(names, dep, set()).ordered, dep, aliases).items()}
    assert g["virtio_console.ko"] == g["virtio.ko"] == g["virtio_ring.ko"] == ()
    assert g["virtio_pci.ko"] == ("pci:v00001AF4d*sv*sd*bc*sc*i*",)
    # no aliases (modules.alias missing), or one off an enumerated bus: always
    assert set(device_guards(names, set(), resolve(names, dep, set()).ordered, dep, {}).values()) == {()}
    ext = "kernel/fs/ext4/ext4.ko:\n"
    assert device_guards(["ext4"], set(), ["kernel/fs/ext4/ext4.ko"], parse_modules_dep(ext), aliases) == {
        "kernel/fs/ext4/ext4.ko": ()}
