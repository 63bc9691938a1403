#!/bin/sh
# Debian's Chromium for the browser tests (test/web/*.test.ts, driven by playwright-core with executablePath),
# unpacked into .cache/chromium/ of this checkout, the way scripts/install-lavapipe.sh unpacks lavapipe. Nothing
# system-wide changes: apt runs with its own sources.list, package lists, cache and download folder; packages are
# unpacked with `dpkg -x`, never installed. No browser is downloaded from anywhere but Debian's archive.
#
# Which packages: exactly those `apt-get install chromium` would install or upgrade on *this* system (a
# simulation against the real dpkg status, bookworm-security carrying Debian's current Chromium); libraries the
# system already has at a good version are used from the system, the others from the unpacked tree
# (LD_LIBRARY_PATH, written to ld-path.txt).
#
# Output (read by test/helpers/browser.ts):
#   .cache/chromium/chromium-path  the browser binary, relative to .cache/chromium
#   .cache/chromium/ld-path.txt    library folders of the unpacked tree (relative), for LD_LIBRARY_PATH
#   .cache/chromium/installed      stamp written last (the packages unpacked), after the binary printed its version
#
# Idempotent: exits at once when the stamp exists. Skips (exit 0, one line) where it cannot apply: not Linux
# x86-64, no apt-get/dpkg, or WASPRUNE_CHROMIUM=0. Any failure after that is an error (exit 1).
set -eu

cd "$(dirname "$0")/.."
DIR="$PWD/.cache/chromium"

say() { echo "install-chromium: $*"; }

if [ "${WASPRUNE_CHROMIUM:-1}" = "0" ]; then say "skipped (WASPRUNE_CHROMIUM=0)"; exit 0; fi
if [ -f "$DIR/installed" ]; then exit 0; fi
if [ "$(uname -s)" != "Linux" ] || [ "$(uname -m)" != "x86_64" ]; then say "skipped (not Linux x86-64)"; exit 0; fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then say "skipped (no apt-get/dpkg)"; exit 0; fi

. ./scripts/apt-local.sh
apt_local_install "$DIR" chromium

BIN=root/usr/lib/chromium/chromium
[ -x "$DIR/$BIN" ] || { say "$BIN missing after unpacking"; exit 1; }
: >"$DIR/ld-path.txt"
# every folder of the tree holding a shared library (e.g. pulseaudio/ for libpulsecommon, found by RUNPATH on a
# real install), top-level library folders first
(cd "$DIR" && find root -name '*.so*' -type f -printf '%h\n' | sort -u | awk '{ print length($0) " " $0 }' | sort -n | cut -d' ' -f2-) >"$DIR/ld-path.txt"
LDP=$(sed "s#^#$DIR/#" "$DIR/ld-path.txt" | paste -sd: -)
GOT=$(LD_LIBRARY_PATH="$LDP${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$DIR/$BIN" --headless --no-sandbox --version 2>&1) ||
  { echo "$GOT"; say "$BIN does not run"; exit 1; }
echo "$BIN" >"$DIR/chromium-path"
apt_local_finish
say "$GOT unpacked into $DIR"
