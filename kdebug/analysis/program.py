"""Open a vmcore with drgn: the kernel's debug info and its modules'."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import drgn
from drgn.helpers.linux.kallsyms import load_module_kallsyms

from kdebug.analysis.debugfiles import configure
from kdebug.errors import KernelError, PostmortemError, VmcoreError
from kdebug.vmcore.locate import Dump

#: What a collector raises on a dump or kernel it cannot fully read: its
#: section is lost, not the report. MemoryError: libdrgn's ENOMEM, from a
#: damaged size or count it was asked to allocate for.
COLLECTOR_ERRORS = (drgn.FaultError, LookupError, ValueError, AttributeError, TypeError, MemoryError)
DRGN_VERSION = drgn.__version__
#: A read of memory the dump does not hold (filtered out, or never written).
FaultError = drgn.FaultError


#: drgn's errors for bytes of the dump that cannot be what they claim: a
#: damaged header, page bitmap or descriptor, or page table. Translated once,
#: here, into kdebug's VmcoreError naming what was being read (``reading``).
#: MemoryError is libdrgn failing to allocate what a damaged size or count
#: in the dump asked for (seen: a mutated 6.1 kdump dump, loading the
#: modules' debug info); the allocation fails at once, nothing grows.
DATA_ERRORS = (drgn.FaultError, drgn.BadDataError, drgn.OutOfBoundsError, MemoryError)
_DAMAGED_HINT = "its headers, page bitmap or page descriptors are corrupt; copy or capture it again"


def damaged(path: Path, what: str, e: Exception) -> VmcoreError:
    """The one line for a dump drgn cannot read ``what`` from."""
    msg = " ".join(str(getattr(e, "message", None) or e).split())
    if isinstance(e, drgn.FaultError):
        msg = f"{msg.removesuffix(f': {e.address:#x}')} at {e.address:#x}"
    elif isinstance(e, MemoryError):
        msg = "a size or count in it asks for more memory than this machine has"
    return VmcoreError(f"{path} is damaged: drgn cannot read {what}: {msg}", hint=_DAMAGED_HINT)


@contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """A step that reads the dump: drgn's data errors become ``damaged``."""
    try:
        yield
    except DATA_ERRORS as e:
        raise damaged(path, what, e) from None


def open_program(dump: Dump) -> tuple[drgn.Program, list[str]]:
    """A program over ``dump`` with debug info loaded, and warnings to show."""
    prog = drgn.Program()
    try:
        prog.set_core_dump(str(dump.path))
    except DATA_ERRORS as e:
        raise damaged(dump.path, "its headers and VMCOREINFO", e) from None
    except (ValueError, OSError, drgn.ObjectNotFoundError) as e:
        raise PostmortemError(f"drgn cannot open {dump.path}: {e}") from None
    except Exception as e:  # noqa: BLE001 -- libkdumpfile's own errors surface as a bare Exception
        raise VmcoreError(f"{dump.path} is damaged: drgn cannot open it: {e}", hint=_DAMAGED_HINT) from None
    if dump.search is not None:
        configure(prog, dump.search)  # kdebug's debug directories, cache and debuginfod client
    with reading(dump.path, "the kernel's page tables and symbols (loading debug info)"):
        return prog, load_kernel_debug_info(prog, dump.vmlinux, dump.module_debug_dir, str(dump.path),
                                            dump.module_files)


def load_kernel_debug_info(prog: drgn.Program, vmlinux: Path, module_debug_dir: Path | None,
                           what: str, module_files: tuple[Path, ...] = ()) -> list[str]:
    """Load the kernel's and its modules' debug info into ``prog`` (a dump or
    a live kernel, ``what``); return warnings to show. ``module_files``:
    out-of-tree modules' files, each used for the loaded module whose
    build-id it carries (drgn checks; a rebuilt module is not mistaken for it)."""
    if module_debug_dir is not None:
        prog.debug_info_options.kernel_directories = ("", str(module_debug_dir))
    warnings = []
    logging.getLogger("drgn").setLevel(logging.ERROR)  # the report says what is missing
    try:
        prog.load_debug_info([str(vmlinux), *(str(p) for p in module_files)], default=True)
    except drgn.MissingDebugInfoError:
        if prog.main_module().debug_file_path is None:
            raise KernelError(f"{vmlinux} has no debug info for the kernel in {what}",
                              hint="install the -dbg package or pass a vmlinux built with DEBUG_INFO") from None
        missing = sorted(m.name for m in prog.modules() if m.wants_debug_file())
        tried = [p.name for p in module_files if _module_key(p.name) in {_module_key(n) for n in missing}]
        why = (f"; {', '.join(tried)} given, but with another build-id (rebuilt since?)" if tried else
               "; give its .ko (built with debug info) with --module-dir DIR")
        warnings.append(f"drgn: no debug info for module(s) {', '.join(missing) or '?'}: "
                        f"their frames show kallsyms names without file:line{why}")
        # Out-of-tree modules rarely ship debug info: name their functions from
        # the kallsyms the kernel keeps for every module.
        prog.register_symbol_finder("module_kallsyms", load_module_kallsyms(prog), enable_index=-1)
    except (ValueError, OSError) as e:
        raise PostmortemError(f"drgn cannot load {vmlinux}: {e}") from None
    return warnings


def _module_key(name: str) -> str:
    """A module's name as the kernel keys it: no suffix, '-' as '_'."""
    return name.split(".", 1)[0].replace("-", "_")


def cached(prog: drgn.Program, key: str, compute):
    """Memoize per program (drgn's ``prog.cache``), never in module globals."""
    try:
        return prog.cache[key]
    except KeyError:
        value = prog.cache[key] = compute()
        return value
