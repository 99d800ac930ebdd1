#!/usr/bin/env bash
# Builds build/plugin.wasm from assembly/index.ts with the versions pinned in
# package-lock.json. Needs node and npm (Debian: nodejs npm).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/asc ]; then
	npm ci --no-audit --no-fund
fi
mkdir -p build
node_modules/.bin/asc assembly/index.ts -b build/plugin.wasm --use abort=abort_proc_exit --optimize
echo "wrote $(pwd)/build/plugin.wasm"
