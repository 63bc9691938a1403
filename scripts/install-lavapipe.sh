#!/bin/sh
# Provide a real WebGPU adapter on a machine without a GPU: Mesa's lavapipe (a Vulkan driver on the CPU),
# unpacked into .cache/lavapipe/ of this checkout. Nothing system-wide changes: apt runs with its own
# sources.list, package lists, cache and download folder; packages are unpacked with `dpkg -x`, never installed.
#
# Why backports: Debian bookworm's Mesa 22.3 lavapipe is refused by Dawn (it lacks
# shaderUniform*ArrayDynamicIndexing); Mesa 25.0.7 from bookworm-backports is accepted (adapter "llvmpipe").
#
# Which packages: exactly those `apt-get install mesa-vulkan-drivers/bookworm-backports` would install or
# upgrade on *this* system (a simulation against the real dpkg status), e.g. here libdrm2, libdrm-amdgpu1
# (the driver needs >= 2.4.121, the system has 2.4.114), libvulkan1 (the loader Dawn dlopens, not installed)
# and mesa-vulkan-drivers itself; libraries the system already has at a good version are used from the system.
#
# Output (read by src/gpu/device.ts, which needs no environment from the user):
#   .cache/lavapipe/lvp_icd.json  the Vulkan ICD manifest, library_path relative to it
#   .cache/lavapipe/preload.txt   the unpacked shared libraries (paths relative to it) in dependency order
#                                 (apt's install order);
#                                 device.ts loads them by absolute path before Dawn dlopens the Vulkan loader
#   .cache/lavapipe/installed     stamp written last: its presence means "the installer succeeded here"
#
# Idempotent: exits at once when the stamp exists. Skips (exit 0) where it cannot apply: not Linux x86-64,
# no apt-get/dpkg (not Debian-like), or WASPRUNE_LAVAPIPE=0. Any failure after that is an error (exit 1).
set -eu

cd "$(dirname "$0")/.."
DIR="$PWD/.cache/lavapipe"
SUITE=bookworm-backports

say() { echo "install-lavapipe: $*"; }

if [ "${WASPRUNE_LAVAPIPE:-1}" = "0" ]; then say "skipped (WASPRUNE_LAVAPIPE=0)"; exit 0; fi
if [ -f "$DIR/installed" ]; then exit 0; fi
if [ "$(uname -s)" != "Linux" ] || [ "$(uname -m)" != "x86_64" ]; then say "skipped (not Linux x86-64)"; exit 0; fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then say "skipped (no apt-get/dpkg)"; exit 0; fi

. ./scripts/apt-local.sh
apt_local_install "$DIR" "mesa-vulkan-drivers/$SUITE" "$SUITE"

: >"$DIR/preload.txt"
for p in $PKGS; do
  name=${p%%=*}
  [ "$name" = mesa-vulkan-drivers ] && continue
  # the package's shared libraries (real files named like a soname), in package order
  dpkg -c "$(apt_local_deb "$name")" | awk '{print $6}' | sed 's#^\./#root/#' | grep -E '/lib[^/]*\.so\.[0-9]+$' >>"$DIR/preload.txt" || true
done

LVP=root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so
[ -f "$DIR/$LVP" ] || { say "$LVP missing after unpacking"; exit 1; }
API=$(sed -n 's/.*"api_version": *"\([^"]*\)".*/\1/p' "$DIR/root/usr/share/vulkan/icd.d/lvp_icd.json")
cat >"$DIR/lvp_icd.json" <<EOF
{ "file_format_version": "1.0.0", "ICD": { "library_path": "./$LVP", "api_version": "${API:-1.3.0}" } }
EOF
apt_local_finish
say "lavapipe unpacked into $DIR ($(echo $PKGS | wc -w) packages)"
