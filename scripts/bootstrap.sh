#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (and a no-op when nothing changed):
#   1. Debian packages the build, the lab and the tests need (apt-get, only if missing)
#   2. npm ci (only when package-lock.json changed since the last install)
#   3. the native addon and the eBPF objects (cmake-js over the top-level CMakeLists.txt)
#   4. the TypeScript (tsc into dist/)
# Needs root for apt-get; everything else runs as the calling user.
#   --bench  also the packages only the benchmark suite uses (`npm run bench`): the HAProxy
#            pair it compares with. Apart so that `npm test` and CI never install or wait for it.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

bench=false
for arg in "$@"; do
  case $arg in
    --bench) bench=true ;;
    *) echo "bootstrap: unknown option $arg (known: --bench)" >&2; exit 2 ;;
  esac
done

# --- 1. Debian packages ------------------------------------------------------
# clang/llvm: compile bpf/*.bpf.c; libbpf-dev: headers + libbpf.so for the addon;
# bpftool: inspection and tests; cmake/make/g++: the addon; iproute2/util-linux/procps:
# the lab (ip netns, nsenter, pkill); curl/openssl: tests and demo clients;
# tshark/tcpdump: wire captures in the mTLS tests; nghttp2-client (h2load)/wrk: load;
# prometheus: promtool checks the /metrics exposition; chromium: headless, loads the node dashboard;
# libjemalloc2: the lab's agents run on it as the image's do (deploy/lab/lab-agents.ts);
# iptables (nf_tables): the two-cluster lab's link between networks filters with it
# (deploy/lab/lab-wan.ts), and the benchmark's capture-cost scenario redirects with it.
PACKAGES=(clang llvm libbpf-dev bpftool cmake make g++ pkg-config iproute2 util-linux procps psmisc curl openssl ca-certificates
  tshark tcpdump nghttp2-client wrk prometheus chromium libjemalloc2 iptables)
# haproxy: the HAProxy pair of the benchmark
BENCH_PACKAGES=(haproxy)
if $bench; then PACKAGES+=("${BENCH_PACKAGES[@]}"); fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then echo "bootstrap: installing ${missing[*]} needs root (apt-get)" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. npm packages ---------------------------------------------------------
stamp=node_modules/.nodemesh-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# --- 3. addon + eBPF objects -------------------------------------------------
# cmake-js would download Node headers; nothing can be downloaded here, so point its
# cache at the headers Debian's nodejs ships in /usr/include/node.
node_version=$(node -p 'process.version')
cache="$HOME/.cmake-js/node-x64/$node_version/include"
if [[ ! -e $cache/node ]]; then
  mkdir -p "$cache"
  ln -sfn /usr/include/node "$cache/node"
fi
bash scripts/build.sh
