"""Kernel configuration: parse ``.config`` text and say what a kernel can do.

Pure: takes text, returns records. Where the config comes from (``/boot``, a
build tree, IKCONFIG inside the image) is :mod:`kdebug.kernel`'s business.
"""

from __future__ import annotations

import gzip
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from kdebug.errors import UsageError
from kdebug.resources import launch_path

_LINE = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")


@dataclass(frozen=True)
class KConfig:
    values: dict[str, str]
    source: str = ""

    def get(self, name: str) -> str | None:
        return self.values.get(name.removeprefix("CONFIG_"))

    def enabled(self, name: str) -> bool:
        return self.get(name) in ("y", "m")

    def builtin(self, name: str) -> bool:
        return self.get(name) == "y"


def parse_kconfig(text: str, source: str = "") -> KConfig:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _LINE.match(line):
            v = m.group(2)
            if len(v) >= 2 and v[0] == v[-1] == '"':
                v = v[1:-1]
            values[m.group(1)] = v
        elif m := _UNSET.match(line):
            values[m.group(1)] = "n"
    return KConfig(values, source)


def ikconfig_from_image(data: bytes) -> str | None:
    """The config IKCONFIG embeds between ``IKCFG_ST`` and ``IKCFG_ED`` (gzip)."""
    start = data.find(b"IKCFG_ST")
    if start < 0:
        return None
    end = data.find(b"IKCFG_ED", start)
    if end < 0:
        return None
    try:
        return gzip.decompress(data[start + 8 : end]).decode("utf-8", "replace")
    except (OSError, EOFError):
        return None


# --- what each kdebug feature needs from the kernel ----------------------

@dataclass(frozen=True)
class Requirement:
    option: str
    why: str
    module_ok: bool = False


@dataclass(frozen=True)
class Feature:
    name: str
    summary: str
    requires: tuple[Requirement, ...]


@dataclass(frozen=True)
class FeatureCheck:
    feature: Feature
    missing: tuple[Requirement, ...]

    @property
    def ok(self) -> bool:
        return not self.missing


def load_features(path: Path | None = None) -> list[Feature]:
    path = path or launch_path("features.toml")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot read feature table {path}: {e}") from None
    feats = []
    for name, body in data.items():
        reqs = tuple(
            Requirement(r["option"], r["why"], bool(r.get("module_ok", False)))
            for r in body.get("requires", [])
        )
        feats.append(Feature(name, body.get("summary", ""), reqs))
    return feats


def check_features(config: KConfig, features: list[Feature]) -> list[FeatureCheck]:
    out = []
    for f in features:
        missing = tuple(
            r for r in f.requires
            if not (config.builtin(r.option) or (r.module_ok and config.enabled(r.option)))
        )
        out.append(FeatureCheck(f, missing))
    return out


# --- the kernel's bug detectors ------------------------------------------

@dataclass(frozen=True)
class Sanitizer:
    name: str
    option: str
    reports: str
    details: tuple[str, ...] = ()
    idle: tuple[str, str, str] | None = None  # (option, value, note): built in but off


@dataclass(frozen=True)
class SanitizerCheck:
    sanitizer: Sanitizer
    present: bool
    settings: tuple[str, ...]  # the detail options set: names of booleans, NAME=value otherwise
    note: str = ""  # why a present detector does nothing yet


def load_sanitizers(path: Path | None = None) -> list[Sanitizer]:
    path = path or launch_path("sanitizers.toml")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot read sanitizer table {path}: {e}") from None
    out = []
    for name, body in data.items():
        idle = body.get("idle")
        out.append(Sanitizer(name, body["option"], body.get("reports", ""), tuple(body.get("details", [])),
                             (idle["option"], str(idle["value"]), idle.get("note", "")) if idle else None))
    return out


def check_sanitizers(config: KConfig, sanitizers: list[Sanitizer]) -> list[SanitizerCheck]:
    """Which detectors ``config`` builds in, with their settings."""
    out = []
    for s in sanitizers:
        present = config.builtin(s.option)
        settings = []
        for d in s.details if present else ():
            v = config.get(d)
            if v == "y":
                settings.append(d)
            elif v not in (None, "n", "m"):
                settings.append(f"{d}={v}")
        note = s.idle[2] if present and s.idle and config.get(s.idle[0]) == s.idle[1] else ""
        out.append(SanitizerCheck(s, present, tuple(settings), note))
    return out
