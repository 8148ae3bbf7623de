# Sourced by scripts/setup.d steps: a private apt configuration that reads
# other Debian suites (sid's sources, trixie's binaries) without touching the
# machine's apt state. Its lists and downloads live in kdebug's cache
# (KDEBUG_CACHE, else XDG_CACHE_HOME/kdebug, else ~/.cache/kdebug: the
# convention of kdebug/paths.py).
KDEBUG_CACHE_DIR=${KDEBUG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kdebug}
KDEBUG_TOOLS=$KDEBUG_CACHE_DIR/tools
PAPT_DIR=$KDEBUG_CACHE_DIR/apt
PAPT_MIRROR=${KDEBUG_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PAPT_OPTS=(
    -o "Dir::Etc::sourcelist=$PAPT_DIR/sources.list"
    -o "Dir::Etc::sourceparts=$PAPT_DIR/sources.list.d"
    -o "Dir::State::Lists=$PAPT_DIR/lists"
    -o "Dir::Cache=$PAPT_DIR/cache"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
)

# papt_lists: the private lists, fetched when missing or older than a week
# (so a re-run of setup needs no network).
papt_lists() {
    mkdir -p "$PAPT_DIR/sources.list.d" "$PAPT_DIR/lists/partial" "$PAPT_DIR/cache/archives/partial"
    local key=/usr/share/keyrings/debian-archive-keyring.gpg
    printf '%s\n' \
        "deb-src [signed-by=$key] $PAPT_MIRROR sid main" \
        "deb [signed-by=$key] $PAPT_MIRROR trixie main" > "$PAPT_DIR/sources.list.new"
    if ! cmp -s "$PAPT_DIR/sources.list.new" "$PAPT_DIR/sources.list"; then
        mv "$PAPT_DIR/sources.list.new" "$PAPT_DIR/sources.list"
        rm -f "$PAPT_DIR/lists/"*_dists_*
    else
        rm -f "$PAPT_DIR/sources.list.new"
    fi
    if [ -z "$(find "$PAPT_DIR/lists" -maxdepth 1 -name '*_dists_*' -mtime -7 -print -quit)" ]; then
        apt-get "${PAPT_OPTS[@]}" update -qq >/dev/null 2>"$PAPT_DIR/update.err"
    fi
    # apt-get update says 0 after a failed fetch too: the lists themselves tell.
    if [ -z "$(find "$PAPT_DIR/lists" -maxdepth 1 -name '*_source_Sources*' -print -quit)" ]; then
        echo "cannot fetch the sid/trixie package lists from $PAPT_MIRROR: $(grep -m1 -E '^(E|W):' "$PAPT_DIR/update.err" 2>/dev/null)"
        return 1
    fi
}

# papt ARGS...: apt-get with the private configuration.
papt() { apt-get "${PAPT_OPTS[@]}" "$@"; }
papt_cache() { apt-cache "${PAPT_OPTS[@]}" "$@"; }

# papt_version KIND NAME: the newest version of source (KIND=src) or binary
# (KIND=bin) package NAME in the private lists.
papt_version() {
    if [ "$1" = src ]; then
        papt_cache showsrc "$2" 2>/dev/null | awk '/^Version:/ {print $2}' | sort -V | tail -1
    else
        papt_cache policy "$2" 2>/dev/null | awk '/Candidate:/ {print $2}'
    fi
}
