// Istio's Service visibility (issue 13): `networking.istio.io/exportTo` on a Service decides
// which namespaces' pods see it. The compiler writes who sees it into the snapshot
// (Service.exportTo: "." resolved, "~" none, absent for everyone, so a mesh without the
// annotation gets the snapshot it got before); the field crosses gRPC; and the node proxy
// takes a source pod outside the list as Istio's sidecar would, whose configuration holds no
// such Service: the ClusterIP is an unknown destination — passthrough to the original
// destination, as for any address that is not a Service — while a pod inside the list is
// balanced to the Service's endpoints.
import test from 'ava';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { compileSnapshot } from '../../control/compile/compiler.js';
import { serviceExportTo } from '../../control/compile/visibility.js';
import { ProxyState } from '../../agent/state/proxy-state.js';
import { UpstreamError, type UpstreamConnector, type UpstreamRequest } from '../../agent/transport/connector.js';
import { ResponseFlag } from '../../agent/transport/response-flags.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { podYaml, resourcesOf } from '../helpers/config-yaml.js';
import { configDir, controlPlane, firstSnapshot } from '../helpers/control-plane.js';
import { LoopbackConnector, snapshot, startBackend, VIP } from '../helpers/l7-harness.js';
import { loopbackProxy } from '../helpers/outbound-proxy.js';
import { emptyRouting } from '../../control/api/snapshot-routing.js';

const svc = (name: string, exportTo?: string) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: demo
  annotations: ${JSON.stringify(exportTo === undefined ? {} : { 'networking.istio.io/exportTo': exportTo })}
spec:
  selector: {app: ${name}}
  ports: [{name: http, port: 80, targetPort: 8080}]
`;

test('exportTo in the snapshot: "." is its own namespace, names are sorted, "~" is none, "*" or no annotation write nothing', (t) => {
  const s = compileSnapshot(resourcesOf([svc('own', '.'), svc('some', 'shop, .,shop2'), svc('none', '~'), svc('all', '*'), svc('mixed', '.,*'), svc('plain'), podYaml('x', { ns: 'demo', ip: '10.244.1.5' })]), {});
  const of = (name: string) => s.services.find((x) => x.name === name)!;
  t.is(of('own').exportTo, 'demo');
  t.is(of('some').exportTo, 'demo,shop,shop2');
  t.is(of('none').exportTo, '~');
  for (const n of ['all', 'mixed', 'plain']) t.false('exportTo' in of(n), n);
  t.is(serviceExportTo({ namespace: 'demo', name: 'x', spec: { annotations: { 'networking.istio.io/exportTo': '' } } } as never), undefined);
});

test('exportTo crosses gRPC to the agent', async (t) => {
  const dir = await configDir(t, { 'a.yaml': [svc('own', '.'), svc('plain')].join('---\n') });
  const cp = await controlPlane(t, { configDir: dir, rescanMs: 0 });
  const s = await firstSnapshot(`127.0.0.1:${cp.grpcPort}`);
  t.is(s.services.find((x) => x.name === 'own')!.exportTo, 'demo');
  t.is(s.services.find((x) => x.name === 'plain')!.exportTo, undefined);
});

test('ProxyState.visibleTo: the listed namespaces only; "~" nobody; no list everybody; a source of no known namespace only what everybody sees', (t) => {
  const snap = snapshot([], emptyRouting(), { services: [{ name: 'other', backends: [] }, { name: 'hidden', backends: [] }] });
  snap.services[0]!.exportTo = 'shop';
  snap.services[2]!.exportTo = '~';
  const st = new ProxyState(snap);
  const [web, other, hidden] = snap.services as [Snapshot['services'][number], Snapshot['services'][number], Snapshot['services'][number]];
  t.true(st.visibleTo(web, 'shop'));
  t.false(st.visibleTo(web, 'elsewhere'));
  t.false(st.visibleTo(web, undefined));
  t.true(st.visibleTo(other, 'elsewhere'));
  t.true(st.visibleTo(other, undefined));
  t.false(st.visibleTo(hidden, 'shop'));
});

/** Dials 127.0.0.1 as the loopback connector does; records every dial; refuses any other address as unreachable. */
class RecordingConnector implements UpstreamConnector {
  readonly dials: string[] = [];
  private readonly loop = new LoopbackConnector();
  connect(req: UpstreamRequest): Promise<Duplex> {
    this.dials.push(`${req.source?.uid ?? '?'} -> ${req.ip}:${req.port}`);
    if (req.ip === '127.0.0.1') return this.loop.connect(req);
    return Promise.reject(new UpstreamError(ResponseFlag.UpstreamConnectionFailure, `${req.ip} is not reachable from this test`));
  }
}

function get(port: number, localAddress: string): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', localAddress, agent: false, headers: { host: 'web.shop.svc.cluster.local' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode! }));
    });
    req.on('error', (err) => resolve({ error: err.message }));
  });
}

test('the node proxy: a pod of a namespace the Service is exported to reaches its endpoints; a pod of another namespace gets the ClusterIP as an unknown destination (passthrough), as a sidecar without the Service would', async (t) => {
  const b = await startBackend({ name: 'web-1', handler: (_q, r) => r.end('ok') });
  t.teardown(() => b.server.close());
  const snap = snapshot([b], emptyRouting(), { clients: [{ name: 'client', ip: '127.0.0.1' }, { name: 'outsider', ip: '127.0.0.3', namespace: 'elsewhere' }] });
  snap.services[0]!.exportTo = 'shop';
  const connector = new RecordingConnector();
  const lp = await loopbackProxy(t, snap, { connector });
  t.deepEqual(await get(lp.port, '127.0.0.1'), { status: 200 });
  t.deepEqual(connector.dials, [`shop/client -> 127.0.0.1:${b.port}`], "the insider is balanced to the Service's endpoint");
  const outsider = await get(lp.port, '127.0.0.3');
  t.truthy(outsider.error, 'the passthrough to the ClusterIP fails here (nothing listens there): the client sees the connection end');
  t.deepEqual(connector.dials.slice(1), [`elsewhere/outsider -> ${VIP}:80`], 'the outsider goes to the original destination, not to the endpoints');
  t.is(b.count, 1);
  // the same proxy with the Service visible to every namespace: the outsider is balanced too
  snap.services[0]!.exportTo = undefined;
  const open = await loopbackProxy(t, snap, { connector });
  t.deepEqual(await get(open.port, '127.0.0.3'), { status: 200 });
  t.is(connector.dials.at(-1), `elsewhere/outsider -> 127.0.0.1:${b.port}`);
});

const dr = (name: string, ns: string, lb: string, exportTo?: string[], createdAt = '2026-01-01T00:00:00Z') => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: ${ns}, creationTimestamp: "${createdAt}"}
spec:
  host: backend.demo.svc.cluster.local
  ${exportTo ? `exportTo: ${JSON.stringify(exportTo)}` : ''}
  trafficPolicy: {loadBalancer: {simple: ${lb}}}
`;
const BACKEND = [svc('backend'), podYaml('backend-1', { ns: 'demo', ip: '10.244.1.5', labels: { app: 'backend' } })];

test('DestinationRule exportTo: a rule exported to some namespaces is their callers\' policy only; the rules exported to all make everyone else\'s; the caller\'s own namespace\'s rule first', (t) => {
  const only = compileSnapshot(resourcesOf([...BACKEND, dr('shop-only', 'shop', 'LEAST_REQUEST', ['.'])]), {});
  t.deepEqual(only.routing.destinations.map((d) => [d.consumerNamespace, d.policy.loadBalancer.simple]), [['shop', 'LEAST_REQUEST']], 'no policy for other callers: the mesh default');
  const both = compileSnapshot(resourcesOf([...BACKEND, dr('global', 'demo', 'RANDOM', undefined, '2025-01-01T00:00:00Z'), dr('shop-only', 'shop', 'LEAST_REQUEST', ['.'])]), {});
  t.deepEqual(
    both.routing.destinations.map((d) => [d.consumerNamespace ?? '', d.policy.loadBalancer.simple]),
    [
      ['', 'RANDOM'],
      ['shop', 'LEAST_REQUEST'],
    ],
    'the older global rule does not win over the caller namespace\'s own',
  );
});

test('DestinationRule exportTo in the node proxy: a caller of the namespace gets a cluster with its policy, every other caller the common one; a new snapshot without the rule folds them back', async (t) => {
  const { ClusterSet } = await import('../../agent/cluster/cluster-set.js');
  const snap = compileSnapshot(resourcesOf([...BACKEND, dr('global', 'demo', 'RANDOM', undefined, '2025-01-01T00:00:00Z'), dr('shop-only', 'shop', 'LEAST_REQUEST', ['.'])]), {});
  const set = new ClusterSet(new LoopbackConnector());
  t.teardown(() => set.close());
  const state = new ProxyState(snap);
  const dest = { host: 'backend.demo.svc.cluster.local', subset: '', port: 0, weight: 100 } as never;
  const shop = set.get(state, dest, 80, 'shop')!;
  const other = set.get(state, dest, 80, 'elsewhere')!;
  t.is(shop.policy.loadBalancer.simple, 'LEAST_REQUEST');
  t.is(other.policy.loadBalancer.simple, 'RANDOM');
  t.is(set.get(state, dest, 80, undefined), other, 'a source of no known namespace: the common cluster');
  t.is(state.policyVariant('backend.demo.svc.cluster.local', 'shop'), 'shop');
  const next = new ProxyState(compileSnapshot(resourcesOf([...BACKEND, dr('global', 'demo', 'RANDOM', undefined, '2025-01-01T00:00:00Z')]), {}, snap));
  t.is(set.get(next, dest, 80, 'shop'), other, 'the namespace\'s rule gone: its callers share the common cluster');
  t.is(other.policy.loadBalancer.simple, 'RANDOM');
});
