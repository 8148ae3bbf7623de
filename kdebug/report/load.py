"""The Report record back from its JSON form (pure), for reports that crossed
a process or machine boundary as JSON: a fleet worker's result, a row of the
crash database. Each field is rebuilt as the type the record declares, so the
record that comes back is equal to the one that was written."""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache

from kdebug.errors import UsageError
from kdebug.report.model import SCHEMA_VERSION, Report


def report_from_dict(d: dict) -> Report:
    """``Report.to_dict()`` -> Report. A report of another major schema
    version is refused; fields a newer minor version added are dropped."""
    version = str(d.get("schema_version", ""))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise UsageError(f"report schema {version or '(none)'} is not readable by this kdebug "
                         f"(schema {SCHEMA_VERSION})", hint="upgrade kdebug where the report is read")
    return _build(Report, d)


@cache
def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _build(cls: type, d: dict):
    hints = _hints(cls)
    kw = {f.name: _value(hints[f.name], d[f.name]) for f in dataclasses.fields(cls)
          if f.init and f.name in d}
    return cls(**kw)


def _value(tp, v):
    if v is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):  # X | None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _value(inner, v)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_value(item, x) for x in v]
    if origin is dict:
        _, item = typing.get_args(tp)
        return {k: _value(item, x) for k, x in v.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, v)
    if tp is float and isinstance(v, int):
        return float(v)
    return v
