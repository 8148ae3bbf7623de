"""Resolve kernel module names to ``.ko`` files in load order (pure)."""

from __future__ import annotations

from dataclasses import dataclass


def modname(s: str) -> str:
    """The kernel treats '-' and '_' in module names alike."""
    base = s.rsplit("/", 1)[-1]
    for ext in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    return base.replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """``modules.dep``: name -> (relative path, relative paths of its deps)."""
    table: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        path, deps = line.split(":", 1)
        table[modname(path)] = (path.strip(), deps.split())
    return table


#: Compressed module suffixes kmod reads; a build tree or a distro may use any.
KO_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def parse_modules_order(text: str) -> list[str]:
    """A build tree's ``modules.order`` -> module paths relative to the tree,
    without suffix. Since commit f65a486821cf ("kbuild: change module.order
    to list *.o instead of *.ko", v6.2) entries end in ``.o``, before in
    ``.ko``; an installed copy prefixes ``kernel/``."""
    out = []
    for line in text.splitlines():
        entry = line.strip().removeprefix("kernel/")
        for ext in (".ko", ".o"):
            if entry.endswith(ext):
                out.append(entry[: -len(ext)])
                break
    return list(dict.fromkeys(out))


def parse_builtin(text: str) -> set[str]:
    return {modname(line.strip()) for line in text.splitlines() if line.strip()}


@dataclass(frozen=True)
class Resolution:
    ordered: list[str]  # relative .ko paths, dependencies first
    builtin: list[str]
    missing: list[str]


def resolve(names: list[str], dep: dict[str, tuple[str, list[str]]], builtin: set[str]) -> Resolution:
    by_path = {p: n for n, (p, _) in dep.items()}
    ordered: list[str] = []
    seen: set[str] = set()
    missing: list[str] = []
    built: list[str] = []

    def visit(path: str) -> None:
        if path in seen:
            return
        seen.add(path)
        name = by_path.get(path)
        deps = dep[name][1] if name else []
        # modules.dep lists dependencies so that the last must load first
        for d in reversed(deps):
            visit(d)
        ordered.append(path)

    for n in names:
        key = modname(n)
        if key in dep:
            visit(dep[key][0])
        elif key in builtin:
            built.append(key)
        else:
            missing.append(n)
    return Resolution(ordered, built, missing)


#: Buses whose devices the hardware or firmware enumerates: a driver for them
#: has nothing to bind to unless such a device is there. (A platform driver may
#: register its own device in its init, so "platform:" does not qualify.)
ENUMERATED_BUSES = ("pci:", "virtio:", "acpi:", "acpi*:", "of:")


def parse_modules_alias(text: str) -> dict[str, list[str]]:
    """``modules.alias``: module name -> its alias patterns (fnmatch globs)."""
    table: dict[str, list[str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "alias":
            table.setdefault(modname(parts[2]), []).append(parts[1])
    return table


def device_guards(names: list[str], always: set[str], ordered: list[str],
                  dep: dict[str, tuple[str, list[str]]], aliases: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """For each path in ``ordered`` (resolve's load order), the modalias
    patterns of which one device must be present for the guest's init to
    load it; () means always.

    A module named in ``names`` is guarded by its own aliases when every one
    of them is on an enumerated bus (a driver for a device this guest lacks
    does nothing); names in ``always`` (what the user asked for), modules
    with other aliases or none, and every dependency of those load always.
    A dependency serves the modules that need it: the union of their guards."""
    guards: dict[str, list[str] | None] = {p: [] for p in ordered}  # None: always
    for n in names:
        key = modname(n)
        if key not in dep:
            continue
        own = aliases.get(key, [])
        guarded = key not in always and own and all(a.startswith(ENUMERATED_BUSES) for a in own)
        path, needs = dep[key]  # depmod lists every dependency, transitively
        for p in (path, *needs):
            if p not in guards or guards[p] is None:
                continue
            if not guarded:
                guards[p] = None
            else:
                guards[p] += [a for a in own if a not in guards[p]]
    return {p: tuple(g) if g is not None else () for p, g in guards.items()}
