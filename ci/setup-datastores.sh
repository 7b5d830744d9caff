#!/usr/bin/env bash
# Azurite (the Azure Blob emulator) for the datastore tests and benchmark.
# Idempotent: a no-op when the pinned version is already installed under .cache/azurite; root
# only when node and npm are missing (ci/setup-node.sh installs Debian's packages).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/.cache/azurite"
VERSION="3.35.0"   # newer releases need node >= 21
BIN="$DEST/node_modules/.bin/azurite-blob"
if [ -x "$BIN" ] && grep -q "\"version\": \"$VERSION\"" "$DEST/node_modules/azurite/package.json" 2>/dev/null; then
  exit 0
fi
sh "$(dirname "$0")/setup-node.sh"
if ! command -v npm >/dev/null 2>&1; then
  echo "Azurite not installed: no npm (above); the Azure Blob datastore tests are skipped" >&2
  exit 0
fi
if ! mkdir -p "$DEST" 2>/dev/null || [ ! -w "$DEST" ]; then
  echo "Azurite not installed: $DEST is not writable by $(id -un); the Azure Blob datastore tests are skipped" >&2
  exit 0
fi
[ -f "$DEST/package.json" ] || echo '{"name": "batchai-test-azurite", "private": true}' > "$DEST/package.json"
npm install --prefix "$DEST" --no-audit --no-fund --loglevel=error "azurite@$VERSION"
"$BIN" --version
