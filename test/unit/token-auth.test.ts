// Agents authorized by their projected ServiceAccount token (as istiod authorizes ztunnel):
// the control plane (Kubernetes source, CA) reviews the token with the stand-in API server's
// TokenReview, binds it to its pod's node, and signs only identities with a pod on that node.
// Another ServiceAccount's token (the east-west gateway's pod, issue 13) gets exactly its own
// identity and nothing else.
// The agent's side is the real one: ControlPlaneCredentials with --token-file over gRPC/TLS.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CertificateRequestError, createCertificateClient } from '../../control/api/ca-client.js';
import { ControlPlaneCredentials } from '../../control/api/control-credentials.js';
import { svidSpiffeId } from '../../control/api/x509-svid.js';
import { watchSnapshots } from '../../control/api/discovery-client.js';
import { CA_FILES } from '../../control/ca/store.js';
import { startControlPlane, type ControlPlane } from '../../control/control-plane.js';
import { KubeApiServerStandIn } from '../helpers/kube-apiserver.js';
import { csr } from '../helpers/csr.js';
import { eventually } from '../helpers/eventually.js';

const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const DB = 'spiffe://cluster.local/ns/shop/sa/db';
const CACHE = 'spiffe://cluster.local/ns/shop/sa/cache';
const AGENT_SA = 'system:serviceaccount:nodemesh-system:nodemesh-agent';
const HOUR = 3600_000;

interface Env {
  cp: ControlPlane;
  api: KubeApiServerStandIn;
  dir: string;
  address: string;
  bundle: string;
}

async function env(t: ExecutionContext): Promise<Env> {
  const api = await KubeApiServerStandIn.start();
  const dir = await mkdtemp(path.join(tmpdir(), 'nm-token-auth-'));
  t.teardown(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  const pod = (ns: string, name: string, node: string, sa: string, ip?: string) =>
    api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns }, spec: { nodeName: node, serviceAccountName: sa, containers: [{ name: 'c' }] }, status: { phase: 'Running', ...(ip ? { podIP: ip } : {}) } });
  const agentA = pod('nodemesh-system', 'nodemesh-agent-a', 'node-a', 'nodemesh-agent', '172.18.0.2');
  const agentB = pod('nodemesh-system', 'nodemesh-agent-b', 'node-b', 'nodemesh-agent', '172.18.0.3');
  pod('shop', 'web-1', 'node-a', 'web', '10.244.1.2');
  pod('shop', 'db-1', 'node-b', 'db', '10.244.2.2');
  pod('shop', 'cache-1', 'node-a', 'cache', '10.244.1.3');
  const impostor = pod('shop', 'impostor-1', 'node-a', 'cache', '10.244.1.4');
  const now = Date.now();
  const bound = (p: typeof agentA) => ({ name: p.metadata.name, uid: p.metadata.uid! });
  api.addToken('token-a', { username: AGENT_SA, audiences: ['nodemesh'], expiresAt: now + HOUR, pod: bound(agentA) });
  api.addToken('token-b', { username: AGENT_SA, audiences: ['nodemesh'], expiresAt: now + HOUR, pod: bound(agentB) });
  api.addToken('token-other-audience', { username: AGENT_SA, audiences: ['https://kubernetes.default.svc.cluster.local'], expiresAt: now + HOUR, pod: bound(agentA) });
  api.addToken('token-expired', { username: AGENT_SA, audiences: ['nodemesh'], expiresAt: now - 1000, pod: bound(agentA) });
  api.addToken('token-web', { username: 'system:serviceaccount:shop:web', audiences: ['nodemesh'], expiresAt: now + HOUR, pod: { name: 'web-1', uid: api.get('Pod', 'shop', 'web-1')!.metadata.uid! } });
  // a token of ServiceAccount web bound to a pod that runs as another one (cannot be minted by a real API server)
  api.addToken('token-web-on-impostor', { username: 'system:serviceaccount:shop:web', audiences: ['nodemesh'], expiresAt: now + HOUR, pod: bound(impostor) });
  api.addToken('token-user', { username: 'alice', audiences: ['nodemesh'], expiresAt: now + HOUR, pod: bound(agentA) });
  const cp = await startControlPlane({
    grpcAddress: '127.0.0.1:0',
    adminAddress: '127.0.0.1:0',
    processMetrics: false,
    kubernetes: { kubeconfig: api.writeKubeconfig(dir), coalesceMs: 5 },
    ca: { dir: path.join(dir, 'ca'), rotationPollMs: 0, tokenAuth: {} },
  });
  t.teardown(() => cp.close());
  // a failure bound only: the file's tests each start a control plane and an API server in
  // one process, and client-node's informers list every kind before the first snapshot
  await eventually(() => cp.snapshot(), 60_000, 'the first snapshot');
  return { cp, api, dir, address: `127.0.0.1:${cp.grpcPort}`, bundle: path.join(dir, 'ca', CA_FILES.trustBundle) };
}

async function ask(t: ExecutionContext, e: Env, token: string, identity: string): Promise<string[]> {
  const tokenFile = path.join(e.dir, `${token}.jwt`);
  await writeFile(tokenFile, `${token}\n`);
  const creds = new ControlPlaneCredentials({ rootCertFile: e.bundle, tokenFile });
  // the deadline is a failure bound (a TokenReview and a signature per call, four control planes in this process)
  const client = createCertificateClient({ address: e.address, credentials: creds.credentials, timeoutMs: 30_000 });
  t.teardown(() => {
    client.close();
    creds.close();
  });
  return client.createCertificate({ csrPem: csr([identity]), identity, validitySeconds: 600 });
}

async function refusedCount(e: Env, reason: string): Promise<number> {
  return (await e.cp.caMetrics!.refused.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

test('a valid projected token of the agent on node A gets certificates for identities on node A, and only those', async (t) => {
  const e = await env(t);
  const chain = await ask(t, e, 'token-a', WEB);
  t.is(svidSpiffeId(chain[0]!), WEB);
  const err = await t.throwsAsync(ask(t, e, 'token-a', DB), { instanceOf: CertificateRequestError });
  t.is(err!.grpcCode, grpc.status.PERMISSION_DENIED);
  t.regex(err!.message, /node node-a may not obtain a certificate for spiffe:\/\/cluster\.local\/ns\/shop\/sa\/db/);
  t.is(await refusedCount(e, 'permission_denied'), 1);
  // the review asked the API server for the nodemesh audience
  t.true(e.api.counters.tokenReviews >= 1);
});

test('a token for another audience, an expired one, a user\'s, or one whose pod runs as another ServiceAccount is refused as unauthenticated and counted', async (t) => {
  const e = await env(t);
  const cases: [string, RegExp][] = [
    ['token-other-audience', /token audiences .* is invalid for the target audiences \["nodemesh"\]/],
    ['token-expired', /token has expired/],
    ['token-user', /alice is not a ServiceAccount/],
    ['token-web-on-impostor', /its token is for ServiceAccount shop\/web but its pod shop\/impostor-1 runs as cache/],
    ['forged', /invalid bearer token/],
  ];
  for (const [token, why] of cases) {
    const err = await t.throwsAsync(ask(t, e, token, WEB), { instanceOf: CertificateRequestError });
    t.is(err!.grpcCode, grpc.status.UNAUTHENTICATED, token);
    t.regex(err!.message, why, token);
  }
  t.is(await refusedCount(e, 'unauthenticated'), cases.length);
});

test('a token bound to the agent pod on node B is node B: refused for node A\'s identities, and a Watch as node A with it is refused', async (t) => {
  const e = await env(t);
  const err = await t.throwsAsync(ask(t, e, 'token-b', WEB), { instanceOf: CertificateRequestError });
  t.is(err!.grpcCode, grpc.status.PERMISSION_DENIED);
  t.regex(err!.message, /node node-b may not obtain a certificate for spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web/);
  t.is(await refusedCount(e, 'permission_denied'), 1);
  t.is(svidSpiffeId((await ask(t, e, 'token-b', DB))[0]!), DB);

  const tokenFile = path.join(e.dir, 'b-watch.jwt');
  await writeFile(tokenFile, 'token-b');
  const creds = new ControlPlaneCredentials({ rootCertFile: e.bundle, tokenFile });
  t.teardown(() => creds.close());
  const errors: string[] = [];
  const w = watchSnapshots({ address: e.address, node: 'node-a', credentials: creds.credentials, onSnapshot: () => errors.push('snapshot'), onError: (er) => errors.push(er.message) });
  t.teardown(() => w.close());
  await eventually(async () => ((await e.cp.caMetrics!.watchRefused.get()).values.find((v) => v.labels.reason === 'permission_denied')?.value ?? 0) >= 1, 10_000, 'the refused watch counted');
  t.false(errors.includes('snapshot'));
});

test('a deleted agent pod\'s token no longer authenticates (the bound pod must still exist with its uid)', async (t) => {
  const e = await env(t);
  e.api.remove('Pod', 'nodemesh-system', 'nodemesh-agent-b');
  const err = await t.throwsAsync(ask(t, e, 'token-b', DB), { instanceOf: CertificateRequestError });
  t.is(err!.grpcCode, grpc.status.UNAUTHENTICATED);
  t.regex(err!.message, /no longer exists/);
});

test("a workload's own token (not the agents' ServiceAccount) gets exactly its own identity: another identity on its node is refused and counted", async (t) => {
  const e = await env(t);
  t.is(svidSpiffeId((await ask(t, e, 'token-web', WEB))[0]!), WEB);
  for (const other of [CACHE, DB]) {
    const err = await t.throwsAsync(ask(t, e, 'token-web', other), { instanceOf: CertificateRequestError });
    t.is(err!.grpcCode, grpc.status.PERMISSION_DENIED, other);
    t.regex(err!.message, /the token of ServiceAccount shop\/web \(pod web-1\) may obtain only its own identity spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web/, other);
  }
  t.is(await refusedCount(e, 'permission_denied'), 2);
});

test("a workload's own token watches snapshots as its pod's node, and only as that node", async (t) => {
  const e = await env(t);
  const tokenFile = path.join(e.dir, 'web-watch.jwt');
  await writeFile(tokenFile, 'token-web');
  const creds = new ControlPlaneCredentials({ rootCertFile: e.bundle, tokenFile });
  t.teardown(() => creds.close());
  let got = 0;
  const own = watchSnapshots({ address: e.address, node: 'node-a', credentials: creds.credentials, onSnapshot: () => got++, onError: () => undefined });
  t.teardown(() => own.close());
  await eventually(() => got > 0, 30_000, 'a snapshot on the workload token as node-a');
  const seen: string[] = [];
  const other = watchSnapshots({ address: e.address, node: 'node-b', credentials: creds.credentials, onSnapshot: () => seen.push('snapshot'), onError: (er) => seen.push(er.message) });
  t.teardown(() => other.close());
  await eventually(async () => ((await e.cp.caMetrics!.watchRefused.get()).values.find((v) => v.labels.reason === 'permission_denied')?.value ?? 0) >= 1, 10_000, 'the watch as node-b refused');
  t.false(seen.includes('snapshot'));
});
