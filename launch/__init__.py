"""kdebug's launch data (installed as ``kdebug.launch``): QEMU profiles,
initramfs recipes, kconfig fragments, trigger sources. Data only: read it
through :mod:`kdebug.resources`."""
