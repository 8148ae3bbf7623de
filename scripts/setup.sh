#!/usr/bin/env bash
# Idempotent setup of a Debian 12 machine for kdebug: every Debian package
# listed in scripts/packages.d/*.txt, then a virtualenv (.venv) with the
# project installed, then per-area steps in scripts/setup.d/*.sh.
# Re-running it installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t PKGS < <(cat scripts/packages.d/*.txt | sed 's/#.*//' | awk 'NF {print $1}' | sort -u)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # kexec-tools asks whether kexec should handle reboots: it should not.
    echo "kexec-tools kexec-tools/load_kexec boolean false" | debconf-set-selections
    # An unreachable third-party list must not stop the Debian ones.
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

for step in scripts/setup.d/*.sh; do
    [ -e "$step" ] && bash "$step"
done
echo "setup: done"
