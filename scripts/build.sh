#!/usr/bin/env bash
# Build step alone (the bootstrap calls it): addon + eBPF objects, then TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."
npx --no-install cmake-js build --log-level error >/tmp/nodemesh-cmake-js.log 2>&1 || { cat /tmp/nodemesh-cmake-js.log >&2; exit 1; }
npx --no-install tsc -p .
