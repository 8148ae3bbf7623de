#!/usr/bin/env bash
# Idempotent setup of a Debian 12 machine for kdebug: host tools from Debian's
# packages, the cloud kernel with its debug vmlinux, and a virtualenv with the
# project installed. Re-running it installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(qemu-system-x86 qemu-utils gdb crash kexec-tools makedumpfile busybox-static
      cpio e2fsprogs binutils file
      linux-image-cloud-amd64 linux-image-cloud-amd64-dbg)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # kexec-tools asks whether kexec should handle reboots; answer for it.
    echo "kexec-tools kexec-tools/load_kexec boolean false" | debconf-set-selections
    # A third-party list that cannot be reached must not stop the Debian ones.
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

VENV=${KDEBUG_VENV:-.venv}
if [ ! -x "$VENV/bin/kdebug" ] || [ pyproject.toml -nt "$VENV/.kdebug-installed" ]; then
    echo "setup: creating $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e '.[dev]'
    touch "$VENV/.kdebug-installed"
fi
echo "setup: done"
