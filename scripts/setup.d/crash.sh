#!/usr/bin/env bash
# A current crash, built from Debian sid's source package (crash 9.x with the
# gdb it embeds in its orig-gdb tarball, so the build needs no network past the
# download) into kdebug's tools cache, one prefix per source version:
#   $KDEBUG_CACHE/tools/crash-<version>/bin/crash
#   $KDEBUG_CACHE/tools/crash-<version>/include/crash/defs.h  (kdps builds against it)
# bookworm's crash 8.0.2 cannot read kernels from 6.4 on; kdebug picks, per
# dump, a crash that can read its kernel (kdebug/crash/support.py).
# Idempotent: a version already built is not built again. ~10 min on 2 idle
# cores. A failure (no compiler, no source) prints a WARNING and exits 0: setup
# goes on and kdebug runs with the crash it has.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/private-apt.sh

say() { echo "setup: crash: $*"; }
warn() { echo "setup: WARNING: crash: $* (kdebug goes on with the crash it has)"; exit 0; }
step() {  # step NAME CMD...: run, print its time
    local t0=$SECONDS; "${@:2}" || return 1; say "$1 ($((SECONDS - t0)) s)"
}

[ "${KDEBUG_SKIP_CRASH_BUILD:-}" = 1 ] && { say "skipped (KDEBUG_SKIP_CRASH_BUILD=1)"; exit 0; }
if ! why=$(papt_lists); then
    built=$(ls -d "$KDEBUG_TOOLS"/crash-*/bin/crash 2>/dev/null | tail -1)
    [ -n "$built" ] && { say "$why; keeping $built"; exit 0; }
    warn "$why"
fi
version=$(papt_version src crash)
[ -n "$version" ] || warn "sid has no crash source package in $PAPT_DIR/lists"
prefix=$KDEBUG_TOOLS/crash-$version
if [ -x "$prefix/bin/crash" ] && [ -e "$prefix/include/crash/defs.h" ]; then
    say "crash $version already built: $prefix/bin/crash"
    exit 0
fi
for tool in gcc g++ make bison flex gawk makeinfo patch dpkg-source strip; do
    command -v "$tool" >/dev/null || warn "cannot build crash $version: $tool is missing (scripts/packages.d/crash-build.txt)"
done
for hdr in lzo/lzo1x.h snappy-c.h zstd.h gmp.h mpfr.h bfd.h ncurses.h zlib.h; do
    echo "#include <$hdr>" | gcc -E -x c - >/dev/null 2>&1 \
        || warn "cannot build crash $version: the header $hdr is missing (scripts/packages.d/crash-build.txt)"
done

say "building crash $version (sid's source package) into $prefix"
work=$KDEBUG_TOOLS/.build-crash-$version
log=$KDEBUG_TOOLS/crash-$version.build.log
rm -rf "$work" && mkdir -p "$work/src"
fetch() { (cd "$work/src" && papt source --download-only "crash=$version" >"$log" 2>&1); }
step "downloaded the source" fetch || warn "apt-get source crash=$version failed: $(tail -1 "$log")"
# dpkg-source lays it out as Debian's build does: the orig-gdb component as
# ./gdb beside the Makefile (the Makefile moves it to gdb-<ver> and applies
# crash's gdb patch; extracted anywhere else that patch is skipped and the
# build fails), then debian/patches applied.
unpack() { dpkg-source -x --no-check "$work/src/"crash_*.dsc "$work/crash" >>"$log" 2>&1; }
step "unpacked with debian/patches" unpack || warn "dpkg-source -x failed: $(tail -1 "$log")"
[ -d "$work/crash/gdb" ] && [ -e "$work/crash/Makefile" ] || warn "the source has no gdb/ beside its Makefile"
build() { make -C "$work/crash" -j"${KDEBUG_JOBS:-2}" lzo snappy zstd >>"$log" 2>&1; }
step "built with lzo, snappy and zstd" build \
    || warn "make failed after $((SECONDS / 60)) min; see $log: $(grep -m1 -i 'error' "$log" || tail -1 "$log")"
[ -x "$work/crash/crash" ] || warn "make left no crash binary; see $log"

tmp=$KDEBUG_TOOLS/.crash-$version.new
rm -rf "$tmp" && mkdir -p "$tmp/bin" "$tmp/include/crash"
# Stripped (181 MB -> a fifth): crash needs only its dynamic symbols, which
# extensions link against; the marker strings kdebug looks for stay.
strip -o "$tmp/bin/crash" "$work/crash/crash" && chmod 755 "$tmp/bin/crash"
cp "$work/crash/defs.h" "$tmp/include/crash/defs.h"
"$tmp/bin/crash" --version >/dev/null 2>&1 || warn "the built crash does not run; see $log"
rm -rf "$prefix" && mv "$tmp" "$prefix"
rm -rf "$work"
say "installed $("$prefix/bin/crash" --version | grep -m1 .) at $prefix/bin/crash ($((SECONDS / 60)) min $((SECONDS % 60)) s)"
