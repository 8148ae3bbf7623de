#!/usr/bin/env bash
# kdebug attach: gdb's index cache for the default vmlinux (a cold first
# attach otherwise spends 15-50 s indexing), and the small debug kernel that
# the tree tests and the benchmark use (built once, ~5-8 min on 2 cores, then
# cached by source + fragment hash). Both are no-ops when already done.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${KDEBUG_VENV:-.venv}/bin/python
"$PY" -m kdebug.attach.warm
if [ -e /usr/src/linux-source-6.1.tar.xz ]; then
    tree=$("$PY" -m kdebug.cli.main kernel build 2>/dev/null | tail -1) || { echo "setup: WARNING: kdebug kernel build failed (see ~/.cache/kdebug/kernels/*/build.log)"; exit 0; }
    echo "setup: debug kernel tree $tree"
fi
