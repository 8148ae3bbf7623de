"""What one crash run hands on (pure): its outputs by command, its console,
and why it failed. The runner fills it; the cross-check and the report read it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CrashRun:
    ok: bool
    seconds: float
    outputs: dict[str, str] = field(default_factory=dict)  # "sys" -> its output
    console: str = ""  # crash's own stdout/stderr: warnings and per-command errors
    error: str = ""
    mode: str = "full"  # or "minimal"
    version: str = ""  # "crash 8.0.2"
    #: One line when this crash cannot read the dump's kernel at all (it
    #: stopped before its first command), naming the release that can.
    unsupported: str | None = None
    extension_error: str = ""  # why kdps was not available in this run
    timed_out: bool = False
