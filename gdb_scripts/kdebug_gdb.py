"""kdebug's gdb commands (kd-*) and functions ($kd_*): `source` this file.

gdb's embedded Python is the system python3, not the interpreter kdebug runs
in. `kdebug attach` hands gdb that interpreter's import paths first (see
kdebug.attach.plan.gdb_argv), so kdebug and its dependencies come from the
installation that launched gdb. Code loaded here imports only the standard
library, gdb and kdebug's pure core (kdebug.model, kdebug.format,
kdebug.decode, kdebug.errors).
"""

import kdebug.gdb_scripts.kdgdb  # noqa: F401  (registers every command)
