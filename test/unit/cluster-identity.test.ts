// A cluster's name (`nodemesh control --cluster`, Istio's cluster ID): it travels with every
// workload in the snapshot, over the real discovery stream, and Istio's metric labels
// source_cluster / destination_cluster carry it; a cluster that was not named keeps Istio's
// "Kubernetes" and the snapshot it had before; a name that is not one is refused at start.
import test from 'ava';
import { startControlPlane } from '../../control/control-plane.js';
import { tcpLabels } from '../../agent/telemetry/metrics.js';
import { compileYaml, podYaml } from '../helpers/config-yaml.js';
import { configDir, controlPlane, firstSnapshot } from '../helpers/control-plane.js';

test('--cluster names every workload of the snapshot over gRPC, and the Istio labels carry it on both ends', async (t) => {
  const dir = await configDir(t, { 'pods.yaml': [podYaml('client', { ip: '10.244.1.2' }), podYaml('server', { ip: '10.244.1.3' })].join('---\n') });
  const cp = await controlPlane(t, { configDir: dir, cluster: 'east-1' });
  const snap = await firstSnapshot(`127.0.0.1:${cp.grpcPort}`);
  t.deepEqual(
    snap.workloads.map((w) => [w.name, w.cluster]),
    [
      ['client', 'east-1'],
      ['server', 'east-1'],
    ],
  );
  const [client, server] = snap.workloads;
  const labels = tcpLabels(client, undefined, server, '10.244.1.3:80', '-');
  t.is(labels.source_cluster, 'east-1');
  t.is(labels.destination_cluster, 'east-1');
});

test('a cluster that was not named is "Kubernetes", as in Istio, and its workloads carry no cluster field', (t) => {
  const snap = compileYaml([podYaml('client', { ip: '10.244.1.2' })]);
  t.false('cluster' in snap.workloads[0]!);
  t.is(tcpLabels(snap.workloads[0], undefined, undefined, '10.0.0.1:80', '-').source_cluster, 'Kubernetes');
});

test('a cluster name that cannot be a label value is refused when the control plane starts, saying what a name is', async (t) => {
  const dir = await configDir(t, {});
  const err = await t.throwsAsync(startControlPlane({ configDir: dir, cluster: 'east 1/a', grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', processMetrics: false }));
  t.regex(err!.message, /invalid cluster name "east 1\/a": expected up to 63 letters, digits/);
});
