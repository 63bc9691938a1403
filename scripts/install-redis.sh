#!/bin/sh
# Provide redis-server for the distributed-pruning tests (test/distributed/): Debian's `redis-server` package
# and what it needs beyond this system, unpacked into .cache/redis/ of this checkout with scripts/apt-local.sh
# (apt with its own sources.list, lists, cache and download folder; packages `dpkg -x`ed, never installed).
# Nothing system-wide changes, and no server is started: the tests start their own (test/helpers/redis.ts).
#
# Output (read by test/helpers/redis.ts):
#   .cache/redis/root/usr/bin/redis-server   the server (its libraries: the system's, or preload below)
#   .cache/redis/lib-path                    LD_LIBRARY_PATH for it (the unpacked library folders, maybe empty)
#   .cache/redis/installed                   stamp written last, after the binary answered --version
#
# Idempotent: exits at once when the stamp exists. Skips (exit 0) where it cannot apply: not Linux, no
# apt-get/dpkg (not Debian-like), or WASPRUNE_REDIS=0 (the distributed tests then skip, saying why). Any
# failure after that is an error (exit 1).
set -eu

cd "$(dirname "$0")/.."
DIR="$PWD/.cache/redis"

say() { echo "install-redis: $*"; }

if [ "${WASPRUNE_REDIS:-1}" = "0" ]; then say "skipped (WASPRUNE_REDIS=0)"; exit 0; fi
if [ -f "$DIR/installed" ]; then exit 0; fi
if [ "$(uname -s)" != "Linux" ]; then say "skipped (not Linux)"; exit 0; fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then say "skipped (no apt-get/dpkg)"; exit 0; fi

. ./scripts/apt-local.sh
# redis-server depends on redis-tools (the binaries) and on libraries; only what this system lacks is listed
apt_local_install "$DIR" redis-server

# the unpacked shared-library folders, for the server's LD_LIBRARY_PATH
LIBS=$(cd "$DIR" && find root -name 'lib*.so.*' -exec dirname {} \; 2>/dev/null | sort -u | sed "s#^#$DIR/#" | paste -sd: -)
printf '%s\n' "$LIBS" >"$DIR/lib-path"
BIN="$DIR/root/usr/bin/redis-server"
# (redis-server is a symlink to the multi-call redis-check-rdb beside it)
[ -e "$BIN" ] || { say "no redis-server in the unpacked packages"; exit 1; }
VERSION=$(LD_LIBRARY_PATH="$LIBS" "$BIN" --version) || { say "the unpacked redis-server does not run"; exit 1; }
apt_local_finish
say "redis-server unpacked into $DIR ($VERSION)"
