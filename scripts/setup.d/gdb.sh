#!/usr/bin/env bash
# kdebug attach and crash: for every installed distro kernel, gdb's index cache
# (a cold first attach otherwise spends 15-50 s indexing) and an indexed copy of
# its vmlinux for crash (half crash's start-up); and the small debug kernels that
# the tree tests and the benchmark use (each built once, ~5-8 min on 2 cores,
# then cached by source + fragment hash). All are no-ops when already done.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${KDEBUG_VENV:-.venv}/bin/python
"$PY" -m kdebug.attach.warm
if [ -e /usr/src/linux-source-6.1.tar.xz ]; then
    tree=$("$PY" -m kdebug.cli.main kernel build 2>/dev/null | tail -1) || { echo "setup: WARNING: kdebug kernel build failed (see ~/.cache/kdebug/kernels/*/build.log)"; exit 0; }
    echo "setup: debug kernel tree $tree"
    # The second tree: debug.config + modules.config (the QEMU devices' drivers
    # as modules), for the --tree modules tests; built after the first, ~5 min.
    tree=$("$PY" -m kdebug.cli.main kernel build --fragment debug --fragment modules 2>/dev/null | tail -1) || { echo "setup: WARNING: kdebug kernel build --fragment modules failed (see ~/.cache/kdebug/kernels/*/build.log)"; exit 0; }
    echo "setup: debug kernel tree with modules $tree"
fi
