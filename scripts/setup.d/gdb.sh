#!/usr/bin/env bash
# kdebug attach and crash: for every installed distro kernel, gdb's index cache
# (a cold first attach otherwise spends 15-50 s indexing) and an indexed copy of
# its vmlinux for crash (half crash's start-up); and the small debug kernels that
# the tree tests and the benchmark use (each built once, ~5-8 min each on 2 idle cores,
# then cached by source + fragment hash). All are no-ops when already done.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${KDEBUG_VENV:-.venv}/bin/python
"$PY" -m kdebug.attach.warm
if [ -e /usr/src/linux-source-6.1.tar.xz ]; then
    tree=$("$PY" -m kdebug.cli.main kernel build 2>/dev/null | tail -1) || { echo "setup: WARNING: kdebug kernel build failed (see ~/.cache/kdebug/kernels/*/build.log)"; exit 0; }
    echo "setup: debug kernel tree $tree"
    # kdump's capture kernel (--capture-kernel auto picks it): the debug tree
    # compressed with LZ4, which boots sooner after a crash under TCG than XZ.
    tree=$("$PY" -m kdebug.cli.main kernel build --fragment debug --fragment capture 2>/dev/null | tail -1) || { echo "setup: WARNING: kdebug kernel build --fragment debug --fragment capture failed (see ~/.cache/kdebug/kernels/*/build.log)"; exit 0; }
    echo "setup: capture kernel tree $tree"
    # The second tree: the sanitizers preset (KASAN, KFENCE, UBSAN, lockdep,
    # list and atomic-sleep checks) + modules.config (the QEMU devices' drivers
    # as modules), for the --tree modules and crash-taxonomy tests; built after
    # the first: 557 CPU-seconds of make (measured: 18 min wall while three
    # other sessions booted guests on the same two cores).
    tree=$("$PY" -m kdebug.cli.main kernel build --preset sanitizers --fragment modules 2>/dev/null | tail -1) || { echo "setup: WARNING: kdebug kernel build --preset sanitizers --fragment modules failed (see ~/.cache/kdebug/kernels/*/build.log)"; exit 0; }
    echo "setup: sanitizer kernel tree with modules $tree"
fi
