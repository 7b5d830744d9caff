#!/usr/bin/env bash
# Azurite (the Azure Blob emulator) for the datastore tests and benchmark.
# Idempotent: a no-op when the pinned version is already installed under .cache/azurite.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/.cache/azurite"
VERSION="3.35.0"   # newer releases need node >= 21
BIN="$DEST/node_modules/.bin/azurite-blob"
if [ -x "$BIN" ] && grep -q "\"version\": \"$VERSION\"" "$DEST/node_modules/azurite/package.json" 2>/dev/null; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  . "$(dirname "$0")/apt.sh"
  apt_get update -qq || true
  apt_get install -y -qq nodejs npm
fi
mkdir -p "$DEST"
[ -f "$DEST/package.json" ] || echo '{"name": "batchai-test-azurite", "private": true}' > "$DEST/package.json"
npm install --prefix "$DEST" --no-audit --no-fund --loglevel=error "azurite@$VERSION"
"$BIN" --version
