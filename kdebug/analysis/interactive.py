"""drgn as a shell over a dump or a live guest: drgn's own interactive
console (``prog`` ready, drgn's Linux helpers imported, as `drgn` itself
does), plus kdebug's collectors as helpers that return the same records the
report uses; or one piece of code run non-interactively, as `drgn -e` does."""

from __future__ import annotations

import runpy
import sys
import traceback
from pathlib import Path

import drgn
import drgn.cli

from kdebug.analysis.log import collect_log
from kdebug.analysis.modules import collect_modules
from kdebug.analysis.stack import task_backtrace
from kdebug.analysis.tasks import collect_tasks

HELPERS_DOC = """kdebug helpers (records as in kdebug's reports):
  kd_tasks()          every task as a TaskRecord (pid, tgid, ppid, state, cpu, comm, ...)
  kd_backtrace(pid)   a task's frames as FrameRecords (function, offset, module, file, line)
  kd_log()            the printk ring as PrintkRecords
  kd_modules()        loaded modules as ModuleRecords"""


def kdebug_helpers(prog: drgn.Program) -> dict:
    """kdebug's collectors bound to ``prog``."""
    from drgn.helpers.linux.pid import find_task

    def kd_backtrace(pid: int):
        task = find_task(prog, pid)
        if not task:
            raise LookupError(f"no task with pid {pid}")
        return task_backtrace(prog, task)

    return {"kd_tasks": lambda: collect_tasks(prog), "kd_backtrace": kd_backtrace,
            "kd_log": lambda: collect_log(prog), "kd_modules": lambda: collect_modules(prog)}


def shell_globals(prog: drgn.Program) -> dict:
    """What drgn's CLI puts in scope for a kernel (``prog``, drgn and its
    Linux helpers), plus kdebug's helpers."""
    ns = drgn.cli.default_globals(prog)
    ns.update(kdebug_helpers(prog))
    return ns


def interact(prog: drgn.Program, banner: str) -> None:
    """drgn's interactive console, with kdebug's helpers in scope."""
    def globals_func(ns: dict) -> dict:
        ns.update(kdebug_helpers(prog))
        return ns

    drgn.cli.run_interactive(prog, banner_func=lambda default: f"{default}\n{banner}\n{HELPERS_DOC}",
                             globals_func=globals_func)


def run_code(prog: drgn.Program, code: str | None = None, script: Path | None = None,
             argv: tuple[str, ...] = ()) -> int:
    """Run ``code`` or ``script`` with drgn's and kdebug's helpers in scope;
    the exit status: 0, the code's own SystemExit, or 1 after printing the
    traceback of an exception it raised (the user's, not kdebug's)."""
    ns = shell_globals(prog)
    old_argv = sys.argv
    try:
        if script is not None:
            sys.argv = [str(script), *argv]
            runpy.run_path(str(script), init_globals=ns, run_name="__main__")
        else:
            sys.argv = ["-c", *argv]
            exec(compile(code or "", "<kdebug shell -c>", "exec"), ns)  # noqa: S102 (the user's own code)
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        # The user's traceback, without kdebug's frames above their code.
        etype, value, tb = sys.exc_info()
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        traceback.print_exception(etype, value, tb)
        return 1
    finally:
        sys.argv = old_argv
    return 0
