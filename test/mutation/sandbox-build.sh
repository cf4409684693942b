#!/usr/bin/env bash
# Stryker's build step, run inside its sandbox (a copy of the repository): Stryker links a
# node_modules folder into the sandbox but not a symlinked one (a git worktree's), so link
# the real one ($1), then compile the instrumented sources once.
set -euo pipefail
[[ -e node_modules ]] || ln -s "$1" node_modules
exec node node_modules/typescript/bin/tsc -p .
