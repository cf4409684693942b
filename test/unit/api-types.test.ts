// The contract's protos are the one definition of what crosses the wire: the TypeScript types
// in control/api/generated/ are generated from them (`npm run gen:api`) and committed, and
// the snapshot's types derive from those. These tests fail when the two drift apart.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as protoLoader from '@grpc/proto-loader';
import { packagePath } from '../../common/paths.js';
import type { Snapshot as SnapshotMessage } from '../../control/api/generated/nodemesh/v1/Snapshot.js';
import { PROTO_DIR, PROTO_LOADER_OPTIONS } from '../../control/api/protos.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { checkSnapshot } from '../../control/api/snapshot-check.js';
import { fullSnapshot } from '../helpers/snapshot-fixture.js';

const GENERATED = packagePath('control', 'api', 'generated');
const SCRIPT = packagePath('scripts', 'gen-api-types.sh');

/** Every file below `dir`, by path relative to it, with its text. */
async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const file = path.join(e.parentPath, e.name);
    out.set(path.relative(dir, file), await readFile(file, 'utf8'));
  }
  return out;
}

test('the committed generated types are what the protos generate', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemesh-gen-api-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'generated');
  await promisify(execFile)('bash', [SCRIPT, out]);
  const fresh = await tree(out);
  const committed = await tree(GENERATED);
  const fix = 'run `npm run gen:api` and commit control/api/generated/';
  t.deepEqual([...committed.keys()].sort(), [...fresh.keys()].sort(), `the generated files differ from the protos': ${fix}`);
  const stale = [...fresh].filter(([file, text]) => committed.get(file) !== text).map(([file]) => file);
  t.deepEqual(stale, [], `generated from an older proto: ${fix}`);
});

test('the generator is run for the loader options the code decodes with', async (t) => {
  const script = await readFile(SCRIPT, 'utf8');
  const flags = new Set(script.match(/--[A-Za-z]+(=\S+)?/g));
  // proto-loader-gen-types' flags, named as proto-loader's options
  const wanted = [
    PROTO_LOADER_OPTIONS.keepCase ? '--keepCase' : undefined,
    `--longs=${PROTO_LOADER_OPTIONS.longs.name}`,
    `--enums=${PROTO_LOADER_OPTIONS.enums.name}`,
    PROTO_LOADER_OPTIONS.defaults ? '--defaults' : undefined,
    PROTO_LOADER_OPTIONS.arrays ? '--arrays' : undefined,
    PROTO_LOADER_OPTIONS.objects ? '--objects' : undefined,
  ].filter((f) => f !== undefined);
  t.deepEqual(
    wanted.filter((f) => !flags.has(f)),
    [],
  );
  t.false(flags.has('--keepCase') && !PROTO_LOADER_OPTIONS.keepCase);
  t.false(flags.has('--oneofs'), 'the loader does not add virtual oneof fields');
});

test('the typed Snapshot is what the generated message accepts, and decodes back to itself through the check', (t) => {
  const def = protoLoader.loadSync(path.join(PROTO_DIR, 'discovery.proto'), { ...PROTO_LOADER_OPTIONS, includeDirs: [PROTO_DIR] });
  const type = def['nodemesh.v1.Snapshot'] as protoLoader.MessageTypeDefinition<SnapshotMessage, unknown>;
  const snapshot: Snapshot = fullSnapshot(42);
  // a compile-time check as much as a runtime one: a Snapshot is a valid message to send
  const sent: SnapshotMessage = snapshot;
  const decoded = type.deserialize(type.serialize(sent));
  t.deepEqual(checkSnapshot(decoded), snapshot);
});
