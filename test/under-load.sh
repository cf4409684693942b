#!/usr/bin/env bash
# The suite under load, as issue 14 asks it to pass (test/README.md, "Under load"):
#   test/under-load.sh suite   npm test three times in a row, each with a second copy of the
#                              unit suite running beside it
#   test/under-load.sh lab     the lab tests with both cores kept busy (stress-ng --cpu 2, or
#                              two shell busy loops where stress-ng is not installed)
# Exits non-zero at the first failing run; the logs stay in $LOGS (default /tmp/nodemesh-under-load).
set -euo pipefail
cd "$(dirname "$0")/.."
LOGS=${LOGS:-/tmp/nodemesh-under-load}
mkdir -p "$LOGS"

# what this script starts, ended by process id when it exits (never by name)
started=()
cleanup() {
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

suite() {
  # npm test is `bootstrap && ava`: bootstrap once (it rebuilds dist/, which the copy beside
  # must not see half-written), then the suite three times, each beside its own unit copy
  bash scripts/bootstrap.sh
  for i in 1 2 3; do
    npx ava dist/test/unit/ >"$LOGS/beside-$i.log" 2>&1 &
    local beside=$!
    started+=("$beside")
    if ! npx ava >"$LOGS/suite-$i.log" 2>&1; then
      echo "run $i: npm test failed, see $LOGS/suite-$i.log" >&2
      exit 1
    fi
    if ! wait "$beside"; then
      echo "run $i: the unit suite beside it failed, see $LOGS/beside-$i.log" >&2
      exit 1
    fi
    echo "run $i: passed, and the unit suite beside it"
  done
}

lab() {
  if command -v stress-ng >/dev/null; then
    stress-ng --cpu 2 --quiet &
    started+=($!)
  else
    for _ in 1 2; do
      sh -c 'while :; do :; done' &
      started+=($!)
    done
  fi
  if ! npx ava dist/test/lab/ >"$LOGS/lab.log" 2>&1; then
    echo "the lab tests failed with both cores busy, see $LOGS/lab.log" >&2
    exit 1
  fi
  echo "the lab tests passed with both cores busy"
}

case ${1:-} in
  suite) suite ;;
  lab) lab ;;
  *)
    echo "usage: test/under-load.sh suite|lab" >&2
    exit 2
    ;;
esac
