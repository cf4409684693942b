// Where the contract's protos are and how both sides load them. The TypeScript types in
// generated/ are generated from the same protos for the same loader options (see
// scripts/gen-api-types.sh; test/unit/api-types.test.ts keeps the two in step), so a message
// decoded with PROTO_LOADER_OPTIONS has the shape of its generated `…__Output` type.
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { packagePath } from '../../common/paths.js';

/** The protos stay in the source tree (this file runs from dist/control/api/). */
export const PROTO_DIR = packagePath('control', 'api');

/**
 * camelCase field names; uint64/int64 as decimal strings (a JS number cannot hold every
 * uint64); every scalar, list, map and non-optional message present on a decoded message
 * (an unset non-optional message as null, an unset `optional` one absent).
 */
export const PROTO_LOADER_OPTIONS = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  arrays: true,
  objects: true,
} as const satisfies protoLoader.Options;

/** Loads one of the contract's protos (discovery.proto, ca.proto). */
export function loadProto(file: string): grpc.GrpcObject {
  const def = protoLoader.loadSync(path.join(PROTO_DIR, file), { ...PROTO_LOADER_OPTIONS, includeDirs: [PROTO_DIR] });
  return grpc.loadPackageDefinition(def);
}

/**
 * A generated message type with the fields K replaced by the interface that extends it: the
 * fields the contract narrows (a string that holds one of a few values, a message that is
 * never null once checked). K must name fields the proto has, so a renamed field fails to
 * compile here instead of leaving a stale override behind.
 */
export type Refine<T, K extends keyof T> = Omit<T, K>;
