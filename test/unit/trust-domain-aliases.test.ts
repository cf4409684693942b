// Trust-domain aliases (issue 13; Istio's MeshConfig trustDomainAliases, `nodemesh control
// --trust-domain-alias TD`): AuthorizationPolicy principals naming the mesh's trust domain,
// an alias, or "cluster.local" stand for the same path in every one of them (as Istio's
// ReplaceTrustDomainAliases); a wildcard or foreign domain is kept as written. The snapshot
// carries the list, and a node proxy takes a server SVID of an alias domain, signed by the
// shared root, as the identity it expects — over real TLS — while without aliases it is an
// IDENTITY_ERROR.
import test from 'ava';
import { expandPrincipals, trustDomainList } from '../../control/compile/trust-domains.js';
import { compileSnapshot } from '../../control/compile/compiler.js';
import { sameIdentity } from '../../agent/hbone/identity-match.js';
import { authorizeConnection, SecurityIndex } from '../../agent/policy/authorization.js';
import { HboneConnector } from '../../agent/hbone/client.js';
import { HboneInbound } from '../../agent/hbone/server.js';
import { deliverInbound } from '../../agent/proxy/inbound-delivery.js';
import { ProxyState } from '../../agent/state/proxy-state.js';
import type { AuthorizationRule, ValueMatch } from '../../control/api/snapshot-security.js';
import type { Snapshot, Workload } from '../../control/api/snapshot.js';
import { exchange, flagOf, NODE_B_IP, plainTcp, pod, req } from '../helpers/hbone-world.js';
import { FixedIdentityProvider, TestCa } from '../helpers/test-ca.js';
import { podYaml, resourcesOf } from '../helpers/config-yaml.js';
import { configDir, controlPlane, firstSnapshot } from '../helpers/control-plane.js';

const principals = (values: ValueMatch[], notValues: ValueMatch[] = []): AuthorizationRule[] => [
  { from: [{ matches: [{ attribute: 'source.principal', path: [], values, notValues }] }], to: [], when: [] },
];
const exact = (value: string): ValueMatch => ({ kind: 'exact', value });
const valuesOf = (rules: AuthorizationRule[]) => rules[0]!.from[0]!.matches[0]!.values.map((v) => `${v.kind}:${v.value}`);

test("principals of the mesh's domain, an alias or cluster.local stand for every domain of the list; wildcards and foreign domains stay as written", (t) => {
  const domains = trustDomainList('td-a', ['td-b']);
  t.deepEqual(domains, ['td-a', 'td-b']);
  t.deepEqual(valuesOf(expandPrincipals(principals([exact('td-b/ns/demo/sa/client')]), domains)), ['exact:td-a/ns/demo/sa/client', 'exact:td-b/ns/demo/sa/client']);
  t.deepEqual(valuesOf(expandPrincipals(principals([exact('td-a/ns/demo/sa/client')]), domains)), ['exact:td-a/ns/demo/sa/client', 'exact:td-b/ns/demo/sa/client']);
  t.deepEqual(valuesOf(expandPrincipals(principals([exact('cluster.local/ns/demo/sa/client')]), domains)), ['exact:td-a/ns/demo/sa/client', 'exact:td-b/ns/demo/sa/client'], 'cluster.local names the local domain and its aliases');
  t.deepEqual(valuesOf(expandPrincipals(principals([{ kind: 'prefix', value: 'td-b/ns/demo/' }]), domains)), ['prefix:td-a/ns/demo/', 'prefix:td-b/ns/demo/']);
  t.deepEqual(valuesOf(expandPrincipals(principals([{ kind: 'suffix', value: '/ns/demo/sa/client' }]), domains)), ['suffix:/ns/demo/sa/client'], '*/ns/… enforces no domain');
  t.deepEqual(valuesOf(expandPrincipals(principals([exact('td-z/ns/demo/sa/client')]), domains)), ['exact:td-z/ns/demo/sa/client'], 'a foreign domain is kept');
  t.deepEqual(valuesOf(expandPrincipals(principals([{ kind: 'prefix', value: 'td-b/' }]), domains)), ['prefix:td-b/'], 'no path: kept');
  const not = expandPrincipals(principals([], [exact('td-b/ns/demo/sa/bad')]), domains)[0]!.from[0]!.matches[0]!.notValues.map((v) => v.value);
  t.deepEqual(not, ['td-a/ns/demo/sa/bad', 'td-b/ns/demo/sa/bad'], 'notPrincipals too');
  // duplicates folded; no aliases: nothing changes
  t.deepEqual(valuesOf(expandPrincipals(principals([exact('td-a/ns/d/sa/x'), exact('td-b/ns/d/sa/x')]), domains)), ['exact:td-a/ns/d/sa/x', 'exact:td-b/ns/d/sa/x']);
  t.deepEqual(trustDomainList('td-a', []), []);
  t.deepEqual(trustDomainList('td-a', ['td-a']), []);
  const same = principals([exact('td-b/ns/demo/sa/client')]);
  t.deepEqual(expandPrincipals(same, []), same);
});

const DENY_B_CLIENT = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-client, namespace: demo}
spec:
  action: DENY
  rules:
  - from:
    - source:
        principals: ["td-b/ns/demo/sa/client"]
`;

test('an AuthorizationPolicy naming the alias domain denies a peer of the local domain with that path (and the alias peer), and the snapshot carries the domains over gRPC', async (t) => {
  const docs = [DENY_B_CLIENT, podYaml('server', { ns: 'demo', ip: '10.244.1.5' })];
  const decide = (s: Snapshot, principal: string) =>
    authorizeConnection(SecurityIndex.of(s.security).forWorkload('demo/server'), { sourcePrincipal: principal, sourceIp: '10.245.1.9', destinationPort: 8080, mtls: true }).decision;
  const withAlias = compileSnapshot(resourcesOf(docs), { trustDomain: 'td-a', trustDomainAliases: ['td-b'] });
  t.is(decide(withAlias, 'spiffe://td-a/ns/demo/sa/client'), 'deny');
  t.is(decide(withAlias, 'spiffe://td-b/ns/demo/sa/client'), 'deny');
  t.is(decide(withAlias, 'spiffe://td-a/ns/demo/sa/other'), 'allow');
  t.deepEqual(withAlias.trustDomains, ['td-a', 'td-b']);
  const without = compileSnapshot(resourcesOf(docs), { trustDomain: 'td-a' });
  t.is(decide(without, 'spiffe://td-a/ns/demo/sa/client'), 'allow', 'without the alias, another domain is another identity');
  t.deepEqual(without.trustDomains, [], 'a mesh without aliases: nothing on the wire');

  const dir = await configDir(t, { 'a.yaml': docs.join('---\n') });
  await t.throwsAsync(controlPlane(t, { configDir: dir, trustDomain: 'td-a', trustDomainAliases: ['TD B'] }), { message: /invalid trust domain alias "TD B"/ });
  const cp = await controlPlane(t, { configDir: dir, trustDomain: 'td-a', trustDomainAliases: ['td-b'], rescanMs: 0 });
  const s = await firstSnapshot(`127.0.0.1:${cp.grpcPort}`);
  t.deepEqual(s.trustDomains, ['td-a', 'td-b']);
  t.is(decide(s, 'spiffe://td-a/ns/demo/sa/client'), 'deny');
});

test('sameIdentity: the expected ID, or its path in another domain of the list; nothing else', (t) => {
  const d = ['td-a', 'td-b'];
  t.true(sameIdentity('spiffe://td-b/ns/shop/sa/web', 'spiffe://td-a/ns/shop/sa/web', d));
  t.true(sameIdentity('spiffe://td-a/ns/shop/sa/web', 'spiffe://td-a/ns/shop/sa/web', []));
  t.false(sameIdentity('spiffe://td-b/ns/shop/sa/web', 'spiffe://td-a/ns/shop/sa/web', []));
  t.false(sameIdentity('spiffe://td-b/ns/shop/sa/db', 'spiffe://td-a/ns/shop/sa/web', d));
  t.false(sameIdentity('spiffe://td-z/ns/shop/sa/web', 'spiffe://td-a/ns/shop/sa/web', d));
  t.false(sameIdentity('spiffe://td-b', 'spiffe://td-a', d));
});

test("over real TLS: a node proxy expecting td-a's web accepts the server's td-b SVID signed by the shared root when td-b is an alias, and refuses it (IDENTITY_ERROR) when it is not", async (t) => {
  const root = await TestCa.create('shared root');
  const webPod = await pod(t, '127.0.0.2');
  const serverSvid = await root.issue('spiffe://td-b/ns/shop/sa/web');
  const clientSvid = await root.issue('spiffe://td-a/ns/shop/sa/client');
  const wl = (name: string, node: string, ip: string, td: string): Workload => ({ uid: `shop/${name}`, name, namespace: 'shop', node, ip, serviceAccount: name, labels: {}, meshed: true, spiffeId: `spiffe://${td}/ns/shop/sa/${name}`, failOpen: false, workloadName: '' });
  const snap = (td: string): Snapshot =>
    ({ version: 1, generatedAt: '', workloads: [wl('client', 'node-a', '10.99.0.2', 'td-a'), wl('web', 'node-b', '127.0.0.2', td)], services: [], nodes: [{ name: 'node-b', ip: NODE_B_IP }], namespaces: [], routing: {}, security: {}, trustBundle: [root.certPem] }) as unknown as Snapshot;
  // cluster B's node proxy knows web in its own domain; cluster A's knows it in A's
  const serverState = new ProxyState(snap('td-b'));
  const inbound = new HboneInbound({ host: NODE_B_IP, port: 0, node: 'node-b', identity: new FixedIdentityProvider([root.certPem], [serverSvid]), state: () => serverState, deliver: (stream, c) => deliverInbound(stream, c, plainTcp, {}) });
  await inbound.listen();
  t.teardown(() => inbound.close());
  const clientState = new ProxyState(snap('td-a'));
  const connector = (trustDomains: string[]) => {
    const c = new HboneConnector({ identity: new FixedIdentityProvider([root.certPem], [clientSvid]), nodeIp: (w) => clientState.nodeIp(w.node), port: inbound.address.port, connectTimeoutMs: 15_000, trustDomains: () => trustDomains });
    t.teardown(() => c.close());
    return c;
  };
  const client = clientState.workloadByUid('shop/client')!;
  const web = clientState.workloadByUid('shop/web')!;
  t.is(web.spiffeId, 'spiffe://td-a/ns/shop/sa/web');
  const s = await connector(['td-a', 'td-b']).connect(req(client, web, webPod.port));
  t.is(await exchange(s, 'hello'), 'echo:hello');
  t.is(await flagOf(connector([]).connect(req(client, web, webPod.port))), 'IDENTITY_ERROR');
});
