#!/usr/bin/env bash
# Build step alone (the bootstrap calls it): addon + eBPF objects, then TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp -t nodemesh-cmake-js.XXXXXX.log)
trap 'rm -f "$log"' EXIT
npx --no-install cmake-js build --log-level error >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
npx --no-install tsc -p .
