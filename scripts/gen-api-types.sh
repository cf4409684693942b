#!/usr/bin/env bash
# Generates the TypeScript types of the contract's protos (control/api/*.proto) into
# control/api/generated/, or into the directory given as $1 (test/unit/api-types.test.ts
# generates into a temp dir and compares with the committed files).
#
# The flags must give the shapes control/api/protos.ts loads the protos with
# (PROTO_LOADER_OPTIONS: keepCase false, longs String, enums String, defaults, arrays,
# objects); the test checks that they do.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-control/api/generated}"
rm -rf "$out"
node_modules/.bin/proto-loader-gen-types \
  --longs=String --enums=String --defaults --arrays --objects \
  --includeComments --grpcLib=@grpc/grpc-js --importFileExtension=.js \
  -I control/api -O "$out" \
  discovery.proto ca.proto
