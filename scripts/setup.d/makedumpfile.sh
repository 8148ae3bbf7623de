#!/usr/bin/env bash
# A current makedumpfile for the capture initramfs: trixie's binary package,
# unpacked (not installed) into kdebug's tools cache, one prefix per version:
#   $KDEBUG_CACHE/tools/makedumpfile-<version>/bin/makedumpfile
# bookworm's 1.7.2 does not read the slab page type of kernels from v6.10 on
# (makedumpfile bad2a7c4fa75, in 1.7.6), so captures there had to keep user
# pages (-d 23); kdebug finds this one first (kdebug/paths.py) and its feature
# check then picks -d 31 by itself. trixie's build needs GLIBC_2.34 at most
# and bookworm's libdw/libelf/liblzo2/libzstd sonames: it runs here as is.
# Idempotent; a failure prints a WARNING and exits 0 (kdebug keeps using the
# makedumpfile it has).
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/private-apt.sh

say() { echo "setup: makedumpfile: $*"; }
warn() { echo "setup: WARNING: makedumpfile: $* (kdebug goes on with the makedumpfile it has)"; exit 0; }

t0=$SECONDS
if ! why=$(papt_lists); then
    have=$(ls -d "$KDEBUG_TOOLS"/makedumpfile-*/bin/makedumpfile 2>/dev/null | tail -1)
    [ -n "$have" ] && { say "$why; keeping $have"; exit 0; }
    warn "$why"
fi
version=$(papt_version bin makedumpfile)
[ -n "$version" ] || warn "trixie has no makedumpfile package in $PAPT_DIR/lists"
prefix=$KDEBUG_TOOLS/makedumpfile-${version#*:}
if [ -x "$prefix/bin/makedumpfile" ]; then
    say "makedumpfile $version already unpacked: $prefix/bin/makedumpfile"
    exit 0
fi
work=$KDEBUG_TOOLS/.makedumpfile-$version.new
rm -rf "$work" && mkdir -p "$work/deb"
(cd "$work/deb" && papt download "makedumpfile=$version" >"$work/log" 2>&1) \
    || warn "apt-get download makedumpfile=$version failed: $(tail -1 "$work/log")"
dpkg-deb -x "$work/deb/"makedumpfile_*.deb "$work/root" || warn "dpkg-deb -x failed"
bin=$(find "$work/root" -type f -name makedumpfile -perm -u+x | head -1)
[ -n "$bin" ] || warn "the package holds no makedumpfile binary"
mkdir -p "$work/prefix/bin" && cp -p "$bin" "$work/prefix/bin/makedumpfile"
out=$("$work/prefix/bin/makedumpfile" -v 2>&1) || warn "trixie's makedumpfile does not run here: $(echo "$out" | tail -1)"
rm -rf "$prefix" && mv "$work/prefix" "$prefix" && rm -rf "$work"
say "unpacked $(echo "$out" | head -1) at $prefix/bin/makedumpfile ($((SECONDS - t0)) s)"
