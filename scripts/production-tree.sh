#!/usr/bin/env bash
# The image's production tree: exactly what deploy/image/Dockerfile copies into the image,
# assembled from a built checkout (scripts/bootstrap.sh: npm ci, addon, eBPF objects, CNI
# plugin, tsc). The Dockerfile runs this script in its build stage and copies DEST whole;
# test/lab/image-tree.test.ts runs it into a temp dir and starts nodemesh from there alone,
# which proves the image holds everything the CLI, the agent and the control plane read.
#
#   DEST/package.json, package-lock.json   the package root (common/paths.ts finds it by name)
#   DEST/REVISION                          the git revision (`nodemesh version`; no .git here)
#   DEST/bin/nodemesh.js                   the launcher
#   DEST/dist/                             the compiled TypeScript, without dist/test
#   DEST/control/api/*.proto               read at run time by the gRPC loader
#   DEST/deploy/lab/samples/               `nodemesh demo`'s sample app
#   DEST/build/Release/nodemesh_native.node, build/bpf/*.bpf.o, build/cni/nodemesh-cni
#   DEST/node_modules/                     production dependencies only (`npm prune --omit=dev`)
#
# usage: scripts/production-tree.sh DEST   (DEST must not exist or be empty)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: scripts/production-tree.sh DEST}
if [[ -e $dest && -n $(ls -A "$dest") ]]; then echo "production-tree: $dest is not empty" >&2; exit 2; fi
for f in dist/cli/main.js build/Release/nodemesh_native.node build/bpf/redirect.bpf.o build/bpf/inbound.bpf.o build/cni/nodemesh-cni node_modules/.package-lock.json; do
  [[ -e $f ]] || { echo "production-tree: $f is missing: run scripts/bootstrap.sh first" >&2; exit 1; }
done
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

cp package.json package-lock.json "$dest/"
rev=${NODEMESH_GIT_REVISION:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
if [[ $rev != unknown && -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then rev="$rev-dirty"; fi
echo "$rev" >"$dest/REVISION"
mkdir -p "$dest/bin" "$dest/control/api" "$dest/deploy/lab" "$dest/build/Release" "$dest/build/bpf" "$dest/build/cni"
cp bin/nodemesh.js "$dest/bin/"
# dist without tests (and without declaration files, which nothing reads at run time)
tar -C dist --exclude=./test --exclude='*.d.ts' --exclude='*.tsbuildinfo' -cf - . | tar -C "$dest" --one-top-level=dist -xf -
cp control/api/*.proto "$dest/control/api/"
cp -r deploy/lab/samples "$dest/deploy/lab/samples"
cp build/Release/nodemesh_native.node "$dest/build/Release/"
cp build/bpf/*.bpf.o "$dest/build/bpf/"
cp build/cni/nodemesh-cni "$dest/build/cni/"

# Production dependencies: the lockfile's tree without devDependencies. The node_modules npm ci
# installed, copied (hard links where the filesystem allows: nothing below is written in
# place) and pruned as `npm ci --omit=dev` would have installed it, offline. npm's own record
# of the tree is removed first: it is rewritten, and must not be a link to the checkout's.
cp -al node_modules "$dest/node_modules" 2>/dev/null || cp -a node_modules "$dest/node_modules"
rm -f "$dest/node_modules/.package-lock.json" "$dest/node_modules/.nodemesh-lock-hash"
rm -rf "$dest/node_modules/.bin" "$dest/node_modules/.cache"
(cd "$dest" && npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
