#!/usr/bin/env bash
# Azurite (the Azure Blob emulator) for the datastore tests and benchmark.
# Idempotent: a no-op when the pinned version is already installed under .cache/azurite; root
# only when node and npm are missing (Debian's packages).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/.cache/azurite"
VERSION="3.35.0"   # newer releases need node >= 21
BIN="$DEST/node_modules/.bin/azurite-blob"
if [ -x "$BIN" ] && grep -q "\"version\": \"$VERSION\"" "$DEST/node_modules/azurite/package.json" 2>/dev/null; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  if command -v node >/dev/null 2>&1; then
    # Debian's npm package conflicts with a nodejs from elsewhere (NodeSource's bundles npm)
    echo "node $(node --version) is installed without npm: install the npm that goes with it" >&2
    exit 1
  fi
  . "$(dirname "$0")/apt.sh"
  apt_install "Azurite, for the Azure Blob datastore tests" nodejs npm
  command -v npm >/dev/null 2>&1 || exit 0
fi
mkdir -p "$DEST"
[ -f "$DEST/package.json" ] || echo '{"name": "batchai-test-azurite", "private": true}' > "$DEST/package.json"
npm install --prefix "$DEST" --no-audit --no-fund --loglevel=error "azurite@$VERSION"
"$BIN" --version
