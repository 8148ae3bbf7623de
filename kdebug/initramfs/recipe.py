"""Initramfs recipes: data in ``launch/initramfs/*.toml``, validated on load."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from kdebug.errors import UsageError
from kdebug.resources import launch_path

RECIPE_DIR = launch_path("initramfs")
_KEYS = {"description", "init", "busybox", "binaries", "modules", "kdump", "files"}


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    init_kind: str  # "script" (a shell /init) or "compile" (a static C program)
    init_source: Path
    busybox: bool = False
    binaries: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    kdump: bool = False  # embed the kernel and a capture initramfs for kexec -p
    files: dict[str, str] = field(default_factory=dict)  # guest path -> host path
    text: str = ""  # the TOML itself, part of the build-cache key


def list_recipes(directory: Path = RECIPE_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml"))


def load_recipe(name: str, directory: Path = RECIPE_DIR) -> Recipe:
    path = Path(name) if name.endswith(".toml") else directory / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(list_recipes(directory)) or "none"
        raise UsageError(f"unknown initramfs recipe {name!r} (known: {known})")
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"recipe {path}: {e}") from None
    return parse_recipe(path.stem, data, path.parent, text)


def parse_recipe(name: str, data: dict, base: Path, text: str = "") -> Recipe:
    unknown = set(data) - _KEYS
    if unknown:
        raise UsageError(f"recipe {name}: unknown keys {', '.join(sorted(unknown))}")
    init = data.get("init")
    if not isinstance(init, dict) or len(init) != 1 or next(iter(init)) not in ("script", "compile"):
        raise UsageError(f"recipe {name}: init must be {{ script = FILE }} or {{ compile = FILE.c }}")
    kind, src = next(iter(init.items()))
    src_path = base / src
    if not src_path.is_file():
        raise UsageError(f"recipe {name}: init source {src_path} not found")

    def strlist(key: str) -> tuple[str, ...]:
        v = data.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise UsageError(f"recipe {name}: {key} must be a list of strings")
        return tuple(v)

    files = data.get("files", {})
    if not isinstance(files, dict):
        raise UsageError(f"recipe {name}: files must be a table of guest path = host path")
    return Recipe(
        name=name,
        description=str(data.get("description", "")),
        init_kind=kind,
        init_source=src_path,
        busybox=bool(data.get("busybox", False)),
        binaries=strlist("binaries"),
        modules=strlist("modules"),
        kdump=bool(data.get("kdump", False)),
        files={str(k): str(v) for k, v in files.items()},
        text=text,
    )
