"""The capture's typed result and its ``capture.json`` (pure).

A capture directory holds::

    vmcore              the dump, mode 0600; present only when it was checked complete
    vmcore.partial      what arrived of a dump that was cut short (never called vmcore)
    console-main.log    console of the crashed kernel, up to the panic
    console-capture.log console of the kdump capture kernel (kdump method)
    capture.json        this record
    modules/            copies of the out-of-tree modules the guest was given

``capture.json`` (``schema`` = 1) has these keys; the post-mortem reads them:

=================  ==========================================================
schema             1
ok                 true when ``vmcore`` is present and was checked complete
vmcore             file name of the dump in the directory, or null
partial            file name of a kept incomplete dump, or null
format             "kdump" (makedumpfile compressed), "elf" or null
method             "kdump" or "qemu" (the method that produced the dump)
requested_method   what the user asked for: "kdump", "qemu" or "auto"
fallback           why "auto" fell back to the QEMU dump, or null
trigger            "sysrq", "oops", ..., "run", or "snapshot"
command            the --run command, or null
dump_level         makedumpfile -d level (0-31); null for ELF dumps
dump_filter        how that level was chosen: {level, requested (null: kdebug chose),
                   reason, safe, kernel_exports, tool_reads, tool} (kdebug.vmcore.filter);
                   null for ELF dumps
compression        "zlib", "lzo", "none" (kdump format) or null
via                how the kdump left the guest: "serial" or "disk"; null for qemu
kernel             {release, build_id, image, vmlinux, cmdline}
vmcoreinfo         {release, build_id, build_id_matches} read from the dump
guest              {memory_mb, cpus, crashkernel}
sizes              {vmcore, transferred, guest_ram} in bytes
check              what drgn could read of the dump before it was called good:
                   {complete, tasks, tasks_complete, panic_task, log_records, gaps,
                   cause, fix, dump_level} (kdebug.report.model.DumpCheck), or null
                   when not checked (no vmlinux)
stages             [{name, seconds, ok, detail}] in order, failed one last
failed_stage       name of the stage that failed, or null
error              {message, hint, diagnoses: [{code, cause, fix, evidence}]} or null
logs               {main, capture} file names of the console logs (or null)
tainted            why the kernel was tainted on purpose (trigger module), or null
panic_on           what was set to panic before the trigger: {words (--panic-on, "none"
                   for none), sysctls {name: value written}, absent [switches this
                   kernel lacks]} (kdebug.capture.panicon), or null
modules            out-of-tree modules given to the guest (--add, the trigger module):
                   [{name, guest, host, file, build_id, vermagic}], ``file`` the copy
                   kept in modules/ beside the dump (postmortem pairs it by build-id)
splat              what the kernel reported when it went on instead of panicking:
                   {kind (kdebug.report.taxonomy's: "null-deref", "kasan", ...), line,
                   panic_on (the word that would have panicked it, or null), waited (s)},
                   or null
run_status         the --run command's exit status when it returned, or null
capture_kernel     the kernel kdump booted to save the dump: {source ("crashed" or
                   "tree"), release, image, size, tree, compression (of the bzImage,
                   trees only), reason}; null for qemu
unwritten          {file name: why} of the logs that could not be written (a full or
                   read-only output directory); {} when all were
start              "cold", or "warm (state KEY, saved TIME)": the guest was restored
                   from a state saved with its capture kernel loaded (kdebug.warm);
                   every warm start of one state shares its KASLR offset, boot log
                   and (without --reseed) random state
warm               {state, saved (epoch), kaslr_offset, reseed, notes} of that state,
                   {notes} when none was used and why, or null
created            UTC time, ISO 8601
seconds            start to vmcore on disk, in seconds
=================  ==========================================================
"""

from __future__ import annotations

import json
import time
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path

from kdebug.errors import UsageError
from kdebug.output import write_file

SCHEMA = 1


@dataclass
class Stage:
    """One step of the loop: how long it took and whether it worked."""

    name: str
    seconds: float
    ok: bool = True
    detail: str = ""


@dataclass
class Capture:
    """The result of one capture, good or not."""

    directory: Path
    method: str
    requested_method: str
    trigger: str
    kernel: dict = field(default_factory=dict)
    guest: dict = field(default_factory=dict)
    command: str | None = None
    dump_level: int | None = None
    dump_filter: dict | None = None
    compression: str | None = None
    via: str | None = None
    vmcore: str | None = None
    partial: str | None = None
    format: str | None = None
    fallback: str | None = None
    vmcoreinfo: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    check: dict | None = None
    stages: list[Stage] = field(default_factory=list)
    failed_stage: str | None = None
    error: dict | None = None
    logs: dict = field(default_factory=dict)
    tainted: str | None = None
    panic_on: dict | None = None
    modules: list[dict] = field(default_factory=list)
    splat: dict | None = None
    run_status: int | None = None
    capture_kernel: dict | None = None
    unwritten: dict = field(default_factory=dict)
    #: "cold", or "warm (state KEY, saved TIME)": a guest restored armed (kdebug.warm)
    start: str = "cold"
    warm: dict | None = None  # the saved state's key, time, KASLR offset; why one was not used
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.vmcore is not None and self.failed_stage is None

    @property
    def vmcore_path(self) -> Path | None:
        return self.directory / self.vmcore if self.vmcore else None

    @property
    def vmlinux(self) -> str | None:
        return self.kernel.get("vmlinux")

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("directory")
        d = {"schema": SCHEMA, "ok": self.ok, **d}
        d["stages"] = [{**asdict(s), "seconds": round(s.seconds, 3)} for s in self.stages]
        if self.seconds is not None:
            d["seconds"] = round(self.seconds, 3)
        return d


def write_capture_json(cap: Capture) -> Path:
    """Write capture.json whole or not at all (a reader never sees half of
    it); an output fault is an OutputError and leaves no temporary file."""
    return write_file(cap.directory / "capture.json", json.dumps(cap.to_dict(), indent=2) + "\n",
                      mode=0o600, what="capture.json")


def load_capture(directory: Path) -> Capture:
    """Read a capture directory's capture.json back into a :class:`Capture`;
    a damaged one is a UsageError naming the place (a line and column, a key)."""
    path = directory / "capture.json"
    try:
        data = json.loads(path.read_bytes())
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{path} is damaged: not UTF-8 at byte {e.start}") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{path} is damaged: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is damaged: not a JSON object")
    if data.get("schema") != SCHEMA:
        raise UsageError(f"{path} has schema {data.get('schema')!r}, expected {SCHEMA}")
    fields = Capture.__dataclass_fields__
    known = {k: v for k, v in data.items() if k in fields and k not in ("directory", "stages")}
    for k, v in known.items():
        want = _shape(fields[k])
        if v is not None and want is not None and not isinstance(v, want):
            raise UsageError(f"{path} is damaged: {k} is {type(v).__name__}, not {want.__name__}")
    stages = data.get("stages") or []
    if not isinstance(stages, list) or not all(isinstance(s, dict) and set(s) <= set(Stage.__dataclass_fields__)
                                               and isinstance(s.get("name"), str)
                                               and isinstance(s.get("seconds"), int | float) for s in stages):
        raise UsageError(f"{path} is damaged: stages is not a list of {{name, seconds, ok, detail}}")
    missing = [k for k, f in fields.items() if k != "directory" and f.default is MISSING
               and f.default_factory is MISSING and not isinstance(known.get(k), str)]
    if missing:
        raise UsageError(f"{path} is damaged: no {', '.join(missing)}")
    cap = Capture(directory=directory, **known)
    cap.stages = [Stage(**s) for s in stages]
    return cap


def _shape(f) -> type | None:
    """The JSON type a Capture field holds (dict, list, str, int, float), None for any."""
    if f.default_factory is not MISSING:
        return type(f.default_factory())
    return {"str": str, "str | None": str, "int | None": int, "float | None": int | float,
            "dict | None": dict}.get(str(f.type))
