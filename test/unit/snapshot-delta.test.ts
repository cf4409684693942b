// Snapshot deltas (control/api/snapshot-delta.ts): what an agent builds from the whole
// snapshot it holds and a delta, both through the real protobuf encoding and the agent's
// check, is the snapshot the control plane compiled, field for field.
import test from 'ava';
import fc from 'fast-check';
import * as grpc from '@grpc/grpc-js';
import { discoveryService, type Service, type Snapshot, type Workload } from '../../control/api/snapshot.js';
import {
  applyDelta,
  compareServices,
  compareWorkloads,
  deltaMessage,
  diffSnapshots,
  DeltaMismatch,
} from '../../control/api/snapshot-delta.js';
import { checkSnapshot, checkSnapshotDelta, InvalidSnapshotError, isDeltaMessage } from '../../control/api/snapshot-check.js';
import { fullSnapshot } from '../helpers/snapshot-fixture.js';
import { holds } from '../helpers/property-holds.js';
import { watchSnapshots } from '../../control/api/discovery-client.js';
import type { NodemeshError } from '../../common/errors.js';

const watch = () => discoveryService().service.Watch as grpc.MethodDefinition<unknown, unknown>;
/** What the agent receives: the message encoded as the control plane writes it, decoded as grpc-js hands it over. */
const overTheWire = (m: object): unknown => watch().responseDeserialize(watch().responseSerialize(m));
const whole = (s: Snapshot) => checkSnapshot(overTheWire({ ...s, version: String(s.version) }));

const base = fullSnapshot(1);
const workload = (i: number, rev: number): Workload => ({
  ...base.workloads[0]!,
  uid: `ns-${i % 3}/pod-${i}`,
  name: `pod-${i}`,
  namespace: `ns-${i % 3}`,
  ip: `10.1.${rev}.${i}`,
  labels: { app: `app-${i % 4}`, rev: String(rev) },
});
const service = (i: number, rev: number): Service => ({
  ...base.services[0]!,
  name: `svc-${i}`,
  namespace: `ns-${i % 3}`,
  hostname: `svc-${i}.ns-${i % 3}.svc.cluster.local`,
  clusterIp: `10.96.${rev}.${i}`,
});

/** A snapshot as the compiler writes it: its keyed lists in their order. */
function snapshot(version: number, w: Map<number, number>, s: Map<number, number>, nodes: number, bundle: string[]): Snapshot {
  return {
    ...base,
    version,
    generatedAt: new Date(1_700_000_000_000 + version).toISOString(),
    workloads: [...w].map(([i, rev]) => workload(i, rev)).sort(compareWorkloads),
    services: [...s].map(([i, rev]) => service(i, rev)).sort(compareServices),
    nodes: base.nodes.slice(0, nodes),
    trustBundle: bundle,
  };
}

// an edit: add or change (a new revision of) entry i, remove it, or change a section
const edit = fc.oneof(
  fc.record({
    op: fc.constantFrom('workload', 'service', 'drop-workload', 'drop-service'),
    i: fc.nat(39),
    rev: fc.integer({ min: 1, max: 9 }),
  }),
  fc.record({ op: fc.constant('nodes'), i: fc.nat(base.nodes.length), rev: fc.constant(0) }),
  fc.record({ op: fc.constant('bundle'), i: fc.nat(2), rev: fc.constant(0) }),
);

test('a delta over the wire, applied to the whole snapshot held, gives the next snapshot exactly', (t) => {
  const start = fc.record({ w: fc.uniqueArray(fc.nat(39), { maxLength: 40 }), s: fc.uniqueArray(fc.nat(39), { maxLength: 40 }) });
  holds(
    t,
    fc.property(start, fc.array(edit, { maxLength: 6 }), ({ w, s }, edits) => {
      const wb = new Map(w.map((i) => [i, 0]));
      const sb = new Map(s.map((i) => [i, 0]));
      const before = snapshot(1, wb, sb, base.nodes.length, base.trustBundle);
      const wn = new Map(wb);
      const sn = new Map(sb);
      let nodes = base.nodes.length;
      let bundle = base.trustBundle;
      for (const e of edits) {
        if (e.op === 'workload') wn.set(e.i, e.rev);
        else if (e.op === 'service') sn.set(e.i, e.rev);
        else if (e.op === 'drop-workload') wn.delete(e.i);
        else if (e.op === 'drop-service') sn.delete(e.i);
        else if (e.op === 'nodes') nodes = e.i;
        else bundle = base.trustBundle.slice(0, e.i);
      }
      const after = snapshot(2, wn, sn, nodes, bundle);
      const d = diffSnapshots(before, after);
      if (!d) throw new Error(`no delta for ${edits.length} edits`); // at most 6 changes: always under the limit
      const message = overTheWire(deltaMessage(d));
      if (!isDeltaMessage(message)) return false;
      const built = applyDelta(whole(before), checkSnapshotDelta(message));
      t.deepEqual(built, whole(after));
      return true;
    }),
    { numRuns: 200 },
  );
});

test('a delta carries only what changed: the changed entries, the removed keys, the changed sections', (t) => {
  const before = snapshot(
    1,
    new Map([
      [1, 0],
      [2, 0],
      [3, 0],
    ]),
    new Map([
      [1, 0],
      [2, 0],
    ]),
    base.nodes.length,
    base.trustBundle,
  );
  const after = snapshot(
    2,
    new Map([
      [1, 0],
      [2, 5],
      [4, 0],
    ]),
    new Map([
      [1, 0],
      [2, 0],
    ]),
    base.nodes.length,
    [],
  );
  const d = diffSnapshots(before, after)!;
  t.deepEqual(
    d.workloads.map((w) => w.uid),
    ['ns-1/pod-4', 'ns-2/pod-2'],
  );
  t.deepEqual(d.removedWorkloads, ['ns-0/pod-3']);
  t.deepEqual(d.services, []);
  t.deepEqual(d.removedServices, []);
  t.deepEqual(Object.keys(d.sections), ['trustBundle']);
  t.is(d.baseVersion, 1);
  t.is(d.version, 2);
});

test('no delta where a whole snapshot is the better message: keys that repeat, or most entries changed', (t) => {
  const before = snapshot(1, new Map(Array.from({ length: 40 }, (_, i) => [i, 0])), new Map([[1, 0]]), 1, []);
  const most = snapshot(2, new Map(Array.from({ length: 40 }, (_, i) => [i, 1])), new Map([[1, 0]]), 1, []);
  t.is(diffSnapshots(before, most), undefined);
  const repeated = { ...before, version: 2, workloads: [...before.workloads, before.workloads[0]!] };
  t.is(diffSnapshots(before, repeated), undefined);
  t.not(diffSnapshots(before, { ...before, version: 2, workloads: before.workloads.slice(1) }), undefined);
});

test('a delta for another version than the one held, or removing what is not held, is a mismatch (the stream is re-opened)', (t) => {
  const one = snapshot(
    1,
    new Map([
      [1, 0],
      [2, 0],
    ]),
    new Map(),
    1,
    [],
  );
  const two = snapshot(2, new Map([[1, 0]]), new Map(), 1, []);
  const d = diffSnapshots(one, two)!;
  t.throws(() => applyDelta({ ...one, version: 7 }, d), {
    instanceOf: DeltaMismatch,
    message: /delta from version 1 came while version 7 is held/,
  });
  t.throws(() => applyDelta(snapshot(1, new Map([[1, 0]]), new Map(), 1, []), d), {
    instanceOf: DeltaMismatch,
    message: /removes a workload/,
  });
});

test('a delta naming a section the agent does not know, or removing an empty key, is refused with the field', (t) => {
  const one = snapshot(1, new Map([[1, 0]]), new Map(), 1, []);
  const d = diffSnapshots(one, snapshot(2, new Map(), new Map(), 1, []))!;
  const bad = overTheWire({ ...deltaMessage(d), sections: ['routing', 'secrets'] });
  t.throws(() => checkSnapshotDelta(bad), {
    instanceOf: InvalidSnapshotError,
    message: /snapshot field sections\[1\]: .*"secrets" is not one of routing/,
  });
  const empty = overTheWire({ ...deltaMessage(d), removedWorkloads: [''] });
  t.throws(() => checkSnapshotDelta(empty), {
    instanceOf: InvalidSnapshotError,
    message: /snapshot field removedWorkloads\[0\]: is empty/,
  });
});

test('an agent sent a delta whose base it does not hold re-opens the stream, and takes the whole snapshot it starts with', async (t) => {
  // a control plane (real gRPC) whose first stream sends version 1, then a delta from version 5
  const requests: { knownVersion: string; deltas: boolean }[] = [];
  const one = snapshot(1, new Map([[1, 0]]), new Map(), 1, []);
  const five = snapshot(5, new Map([[1, 0]]), new Map(), 1, []);
  const six = snapshot(
    6,
    new Map([
      [1, 0],
      [2, 0],
    ]),
    new Map(),
    1,
    [],
  );
  const server = new grpc.Server();
  server.addService(discoveryService().service, {
    watch: (call: grpc.ServerWritableStream<{ knownVersion: string; deltas: boolean }, unknown>) => {
      requests.push(call.request);
      if (requests.length === 1) {
        call.write({ ...one, version: '1' });
        call.write(deltaMessage(diffSnapshots(five, six)!));
      } else call.write({ ...six, version: '6' });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  t.teardown(() => server.forceShutdown());
  const got: Snapshot[] = [];
  const errors: NodemeshError[] = [];
  let done!: () => void;
  const six$ = new Promise<void>((resolve) => (done = resolve));
  const w = watchSnapshots({
    address: `127.0.0.1:${port}`,
    node: 'node-a',
    initialBackoffMs: 20,
    maxBackoffMs: 50,
    onSnapshot: (s) => {
      got.push(s);
      if (s.version === 6) done();
    },
    onError: (e) => errors.push(e),
  });
  t.teardown(() => w.close());
  const timer = setTimeout(done, 20_000);
  await six$;
  clearTimeout(timer);
  t.deepEqual(
    got.map((s) => s.version),
    [1, 6],
  );
  t.deepEqual(got[1], whole(six));
  t.deepEqual(requests, [
    { node: 'node-a', knownVersion: '0', deltas: true },
    { node: 'node-a', knownVersion: '1', deltas: true },
  ]);
  t.regex(errors[0]!.message, /a delta from version 5 came while version 1 is held; re-opening the stream for a whole snapshot/);
  t.is(w.rejected(), 0, 'a mismatch is not a defect of the snapshot');
});
