#!/usr/bin/env bash
# Idempotent setup of a Debian 12 machine for kdebug: every Debian package
# listed in scripts/packages.d/*.txt, then a virtualenv (.venv) with the
# project installed, then per-area steps in scripts/setup.d/*.sh.
# Re-running it installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step says how long it took (a fresh machine: see README, "Setup").
t_start=$SECONDS
took() { echo "setup: $1: $(($SECONDS - $2)) s"; }
t=$SECONDS

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
took "Debian packages (packages.d/*.txt)" "$t"
t=$SECONDS

# bookworm-backports: the newer kernel generation (6.12 with -dbg and headers).
# Each metapackage in backports.list is resolved to the exact packages its
# backports version depends on; installing those leaves bookworm's own
# metapackages (and so the 6.1 kernel) in place.
BPO=/etc/apt/sources.list.d/kdebug-backports.sources
if [ ! -e "$BPO" ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$BPO"
    apt-get update -qq || true
fi
mapfile -t META < <(sed 's/#.*//' scripts/packages.d/backports.list | awk '$1 == "meta" {print $2}')
mapfile -t DIRECT < <(sed 's/#.*//' scripts/packages.d/backports.list | awk '$1 == "pkg" {print $2}')
mapfile -t BPKGS < <(apt-cache depends -t bookworm-backports "${META[@]}" 2>/dev/null | awk '$1 == "Depends:" {print $2}' | sort -u)
bmissing=()
for p in "${BPKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || bmissing+=("$p")
done
for p in "${DIRECT[@]}"; do
    # Backports versions carry ~bpo: anything else is bookworm's (or missing).
    dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null | grep -q "install ok installed .*~bpo" || bmissing+=("$p")
done
if ((${#bmissing[@]})); then
    echo "setup: installing from bookworm-backports: ${bmissing[*]}"
    # pkg/suite, not -t: -t would also move bookworm's metapackages to backports.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${bmissing[@]/%//bookworm-backports}" >/dev/null
fi
took "bookworm-backports packages (6.12 kernel, QEMU 10)" "$t"
t=$SECONDS

VENV=${KDEBUG_VENV:-.venv}
if [ ! -x "$VENV/bin/kdebug" ] || [ pyproject.toml -nt "$VENV/.kdebug-installed" ]; then
    echo "setup: creating $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e '.[dev,fleet]'
    touch "$VENV/.kdebug-installed"
fi
took "virtualenv $VENV" "$t"

for step in scripts/setup.d/*.sh; do
    t=$SECONDS
    [ -e "$step" ] && bash "$step"
    took "${step#scripts/}" "$t"
done
echo "setup: done in $(((SECONDS - t_start) / 60)) min $(((SECONDS - t_start) % 60)) s"
