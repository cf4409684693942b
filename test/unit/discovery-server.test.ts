// The discovery stream over a real gRPC socket: the agent-side client (control/api) against
// a real control plane on 127.0.0.1, driven by files in a temp directory.
import test, { type ExecutionContext } from 'ava';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { watchSnapshots, type SnapshotWatch } from '../../control/api/discovery-client.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { startControlPlane } from '../../control/control-plane.js';
import { configDir, controlPlane } from '../helpers/control-plane.js';
import { eventually } from '../helpers/eventually.js';

const service = (name: string, ip: string) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  clusterIP: ${ip}
  ports:
  - port: 80
`;

/** A client that records what it receives and lets a test wait for a condition on it. */
function agent(t: ExecutionContext, port: number, node: string) {
  const received: Snapshot[] = [];
  const waiters: { pred: (s: Snapshot[]) => boolean; resolve: () => void }[] = [];
  const watch: SnapshotWatch = watchSnapshots({
    address: `127.0.0.1:${port}`,
    node,
    initialBackoffMs: 50,
    maxBackoffMs: 200,
    onSnapshot: (s) => {
      received.push(s);
      for (const w of [...waiters]) if (w.pred(received)) w.resolve();
    },
  });
  t.teardown(() => watch.close());
  const until = (what: string, pred: (s: Snapshot[]) => boolean, ms = 20_000): Promise<void> =>
    pred(received)
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; received ${JSON.stringify(received.map((s) => s.version))}`)), ms);
          waiters.push({
            pred,
            resolve: () => {
              clearTimeout(timer);
              resolve();
            },
          });
        });
  return { received, watch, until };
}

const names = (s: Snapshot | undefined) => s?.services.map((x) => x.name) ?? [];

test('an agent gets the current snapshot as soon as it connects, identical to the control plane\'s', async (t) => {
  const dir = await configDir(t, { 'a.yaml': service('web', '10.96.0.10') });
  const cp = await controlPlane(t, { configDir: dir });
  const a = agent(t, cp.grpcPort, 'node-a');
  await a.until('the first snapshot', (r) => r.length === 1);
  t.deepEqual(a.received[0], cp.snapshot());
  t.deepEqual(names(a.received[0]), ['web']);
});

test('a file changing in the watched directory reaches a connected agent as the next version', async (t) => {
  const dir = await configDir(t, { 'a.yaml': service('web', '10.96.0.10') });
  const cp = await controlPlane(t, { configDir: dir, debounceMs: 20, rescanMs: 60_000 });
  const a = agent(t, cp.grpcPort, 'node-a');
  await a.until('the first snapshot', (r) => r.length === 1);
  await writeFile(path.join(dir, 'b.yaml'), service('api', '10.96.0.11'));
  await a.until('a second version', (r) => r.length === 2);
  t.is(a.received[1]!.version, a.received[0]!.version + 1);
  t.deepEqual(names(a.received[1]), ['api', 'web']);
});

test('a new version reaches an agent holding the one before as a delta, and what it builds is the control plane\'s snapshot', async (t) => {
  const dir = await configDir(t, { 'a.yaml': service('web', '10.96.0.10'), 'b.yaml': service('api', '10.96.0.11') });
  const cp = await controlPlane(t, { configDir: dir, debounceMs: 20, rescanMs: 60_000 });
  const a = agent(t, cp.grpcPort, 'node-a');
  await a.until('the first snapshot', (r) => r.length === 1);
  await writeFile(path.join(dir, 'b.yaml'), service('api', '10.96.0.12'));
  await writeFile(path.join(dir, 'c.yaml'), service('cart', '10.96.0.13'));
  await a.until('the second file too', (r) => names(r.at(-1)).includes('cart'));
  t.deepEqual(a.received.at(-1), cp.snapshot());
  const metrics = await (await fetch(`http://127.0.0.1:${cp.adminPort}/metrics`)).text();
  // the first snapshot of a stream is whole; every later one a delta
  t.regex(metrics, /^pilot_xds_pushes\{type="nodemesh.snapshot"\} 1$/m);
  t.regex(metrics, new RegExp(`^pilot_xds_pushes\\{type="nodemesh.snapshot.delta"\\} ${a.received.length - 1}$`, 'm'));
});

test('the control plane tracks connected agents by node and counts pushes', async (t) => {
  const dir = await configDir(t, { 'a.yaml': service('web', '10.96.0.10') });
  const cp = await controlPlane(t, { configDir: dir, rescanMs: 0 });
  const a = agent(t, cp.grpcPort, 'node-a');
  const b = agent(t, cp.grpcPort, 'node-b');
  await Promise.all([a.until('a snapshot', (r) => r.length === 1), b.until('a snapshot', (r) => r.length === 1)]);
  const version = cp.snapshot()!.version;
  t.deepEqual(
    cp.agents().map((x) => [x.node, x.sentVersion]).sort(),
    [
      ['node-a', version],
      ['node-b', version],
    ],
  );
  const metrics = await (await fetch(`http://127.0.0.1:${cp.adminPort}/metrics`)).text();
  t.regex(metrics, /^nodemesh_connected_agents 2$/m);
  t.regex(metrics, /^nodemesh_snapshot_pushes_total 2$/m);
  b.watch.close();
  await eventually(() => cp.agents().length === 1, 20_000, 'the agent to connect');
  t.deepEqual(cp.agents().map((x) => x.node), ['node-a']);
});

test('an agent reconnects after the control plane restarts, keeping its last snapshot meanwhile', async (t) => {
  const dir = await configDir(t, { 'a.yaml': service('web', '10.96.0.10') });
  const first = await startControlPlane({ configDir: dir, grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', processMetrics: false });
  const port = first.grpcPort;
  const a = agent(t, port, 'node-a');
  await a.until('the first snapshot', (r) => r.length === 1);
  await first.close();
  t.deepEqual(names(a.watch.snapshot()), ['web'], 'kept while disconnected');

  await writeFile(path.join(dir, 'b.yaml'), service('api', '10.96.0.11'));
  await controlPlane(t, { configDir: dir, grpcAddress: `127.0.0.1:${port}` });
  await a.until('a snapshot from the restarted control plane', (r) => r.length === 2);
  t.deepEqual(names(a.received[1]), ['api', 'web']);
  t.true(a.watch.connected());
});

test('an agent started before the control plane connects once it is up', async (t) => {
  const dir = await configDir(t, { 'a.yaml': service('web', '10.96.0.10') });
  const probe = await startControlPlane({ configDir: dir, grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', processMetrics: false });
  const port = probe.grpcPort; // a port that is free again once closed
  await probe.close();
  const errors: string[] = [];
  const a = agent(t, port, 'node-a');
  const w = watchSnapshots({ address: `127.0.0.1:${port}`, node: 'node-x', initialBackoffMs: 50, maxBackoffMs: 100, onSnapshot: () => {}, onError: (e) => errors.push(e.code) });
  t.teardown(() => w.close());
  await eventually(() => errors.length >= 2, 20_000, 'two failed attempts');
  t.true(errors.every((c) => c === 'NM_ERR_CONTROL'));
  await controlPlane(t, { configDir: dir, grpcAddress: `127.0.0.1:${port}` });
  await a.until('the first snapshot', (r) => r.length === 1);
  t.deepEqual(names(a.received[0]), ['web']);
});
