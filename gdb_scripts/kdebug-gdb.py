"""kdebug's gdb commands (kd-*) and functions ($kd_*): `source` this file.

gdb's embedded Python is the system python3, not kdebug's virtualenv. Code
loaded here imports only the standard library, gdb and kdebug's pure core
(kdebug.model, kdebug.format, kdebug.kgdb, kdebug.errors). kdebug.format
needs tabulate: Debian's python3-tabulate (scripts/packages.d/gdb.txt); when
it is missing we fall back to the virtualenv's site-packages if that was
built for the same Python minor version.
"""

import glob
import os
import sys

_here = os.path.dirname(os.path.realpath(__file__))
for _p in (_here, os.path.dirname(_here)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

try:
    import tabulate  # noqa: F401
except ImportError:
    _ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    sys.path.extend(glob.glob(os.path.join(os.path.dirname(_here), ".venv", "lib", _ver, "site-packages")))

import kdgdb  # noqa: E402,F401  (registers every command)
