// The agent's identity manager (agent/identity/identity-manager.ts) against a real CA (control/ca/ca.ts)
// on a fake clock: renewal at half-life ± jitter with a new key, never past expiry, backoff
// while the CA fails, identities dropped with their pods, renewal under a new root soon
// after the bundle gains it; and, against a CA stub at the wire level (real gRPC), a
// returned certificate for another identity is rejected.
import test, { type ExecutionContext } from 'ava';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { IdentityManager, CertificateCheckError, KEY_GENERATION_SLOTS, keyGenerationsInFlight } from '../../agent/identity/identity-manager.js';
import { certificateService, createCertificateClient, CertificateRequestError, type CertificateSigner, type CreateCertificateRequestWire } from '../../control/api/ca-client.js';
import type { Snapshot, Workload } from '../../control/api/snapshot.js';
import { verifyChain } from '../../control/api/x509-svid.js';
import { BACKDATE_MS, startLocalCa, type LocalCa } from '../../control/ca/ca.js';
import { loadSigner, parseCsr, signLeaf } from '../../control/ca/certificates.js';
import { CaStore } from '../../control/ca/store.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { eventually } from '../helpers/eventually.js';
import { metricValue } from '../helpers/metrics.js';

const NODE = 'node-a';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const DB = 'spiffe://cluster.local/ns/shop/sa/db';
const HOUR = 3600_000;

function workload(name: string, sa: string, node: string, meshed = true): Workload {
  return { uid: `shop/${name}`, name, namespace: 'shop', node, ip: '10.244.0.2', serviceAccount: sa, labels: {}, meshed, spiffeId: `spiffe://cluster.local/ns/shop/sa/${sa}`, failOpen: false, workloadName: '' };
}

let version = 0;
function snapshot(workloads: Workload[], trustBundle: string[]): Snapshot {
  return { version: ++version, generatedAt: new Date().toISOString(), workloads, nodes: [], namespaces: [], services: [], routing: {} as Snapshot['routing'], security: {} as Snapshot['security'], trustBundle };
}

async function tempDir(t: ExecutionContext): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'nm-identity-test-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** A CA on the fake clock behind the CertificateSigner interface, recording calls; `failing` makes it refuse. */
async function inProcessCa(t: ExecutionContext, clock: FakeClock, caOpts: { workloadTtlMs?: number } = {}) {
  const ca = await startLocalCa({ dir: path.join(await tempDir(t), 'ca'), trustDomain: 'cluster.local', clock, rotationPollMs: 0, ...caOpts });
  t.teardown(() => ca.close());
  const calls: { at: number; identity: string }[] = [];
  const state = { failing: false };
  const signer: CertificateSigner = {
    async createCertificate(req) {
      calls.push({ at: clock.now(), identity: req.identity });
      if (state.failing) throw new CertificateRequestError(grpc.status.UNAVAILABLE, 'control plane unreachable (test)');
      return ca.signWorkload({ csrPem: req.csrPem, spiffeId: req.identity, ttlSeconds: req.validitySeconds });
    },
    close() {},
  };
  return { ca, calls, state, signer };
}

function manager(t: ExecutionContext, clock: FakeClock, signer: CertificateSigner, ca: LocalCa, extra: Partial<ConstructorParameters<typeof IdentityManager>[0]> = {}) {
  const registry = new Registry();
  const m = new IdentityManager({ node: NODE, signer, clock, registry, initialTrustBundle: ca.trustBundle(), ...extra });
  t.teardown(() => m.close());
  return { m, registry };
}

const counter = (registry: Registry, labels: Record<string, string>) => metricValue('nodemesh_identity_certificate_requests_total', labels, registry);

test('renews at half-life ± jitter with a new key, again and again, and the certificate never expires', async (t) => {
  const clock = new FakeClock();
  const { ca, calls, signer } = await inProcessCa(t, clock);
  const { m, registry } = manager(t, clock, signer, ca, { prefetch: false });
  m.onSnapshot(snapshot([workload('web-1', 'web', NODE)], ca.trustBundle()));
  let cert = await m.certificate(WEB);
  t.is(new X509Certificate(cert.certChainPem).subjectAltName, `URI:${WEB}`);
  for (let i = 0; i < 6; i++) {
    // the lifetime as issued: from when the CA signed (the fake clock stands still while it
    // does), not from notBefore, which is backdated for skew
    const issued = cert.notBefore.getTime() + BACKDATE_MS;
    const life = cert.notAfter.getTime() - issued;
    const due = clock.nextDue()!;
    const fraction = (due - issued) / life;
    t.true(fraction >= 0.45 && fraction <= 0.55, `renewal ${i} scheduled at ${fraction.toFixed(3)} of the lifetime`);
    clock.advanceTo(due);
    const prev = cert;
    const next = await eventually(async () => {
      const c = await m.certificate(WEB);
      return c !== prev && c;
    }, 30_000, `renewal ${i}`);
    t.true(clock.now() < prev.notAfter.getTime(), 'renewed before the old certificate expired');
    t.not(next.keyPem, prev.keyPem, 'a new key each time');
    t.true(next.notAfter > prev.notAfter);
    cert = next;
  }
  t.is(calls.length, 7, 'one initial request and six renewals');
  t.is(await counter(registry, { kind: 'renewal', result: 'success' }), 6);
  t.is(await counter(registry, { kind: 'initial', result: 'success' }), 1);
  const text = await registry.metrics();
  const expiry = Number(/nodemesh_identity_certificate_expiry_seconds\{identity="[^"]+"\} (\S+)/.exec(text)![1]);
  t.is(Math.round(expiry), Math.round((cert.notAfter.getTime() - clock.now()) / 1000));
});

test('while the CA fails, retries back off, the old certificate keeps serving, and the renewal lands before expiry', async (t) => {
  const clock = new FakeClock();
  const { ca, calls, state, signer } = await inProcessCa(t, clock);
  const { m, registry } = manager(t, clock, signer, ca, { prefetch: false, retryInitialMs: 1000, retryMaxMs: 10 * 60_000 });
  m.onSnapshot(snapshot([workload('web-1', 'web', NODE)], ca.trustBundle()));
  const first = await m.certificate(WEB);
  state.failing = true;
  const failures = async (n: number) => eventually(async () => (await counter(registry, { result: 'unavailable' })) >= n && m.status()[0]!.nextRenewal, 30_000, `${n} failures`);
  // renewal time, then eight retries
  for (let n = 1; n <= 9; n++) {
    clock.advanceTo(clock.nextDue()!);
    await failures(n);
    t.is(await m.certificate(WEB), first, 'the old certificate serves meanwhile');
  }
  const gaps = calls.slice(2).map((c, i) => c.at - calls[i + 1]!.at);
  for (let i = 1; i < gaps.length; i++) t.true(gaps[i]! >= gaps[i - 1]! * 0.7, `backoff grows: ${gaps.map((g) => Math.round(g / 1000)).join(', ')} s`);
  t.true(gaps[gaps.length - 1]! > gaps[0]! * 8, 'exponentially');
  t.true(clock.now() < first.notAfter.getTime());
  state.failing = false;
  clock.advanceTo(clock.nextDue()!);
  const renewed = await eventually(async () => {
    const c = await m.certificate(WEB);
    return c !== first && c;
  });
  t.true(clock.now() < first.notAfter.getTime(), 'renewed before expiry');
  t.true(renewed.notAfter > first.notAfter);
});

test('retries speed up as expiry nears, and an expired certificate is never handed out', async (t) => {
  const clock = new FakeClock();
  const { ca, state, signer } = await inProcessCa(t, clock);
  const { m } = manager(t, clock, signer, ca, { prefetch: false, retryInitialMs: HOUR, retryMaxMs: 10 * HOUR });
  m.onSnapshot(snapshot([workload('web-1', 'web', NODE)], ca.trustBundle()));
  const first = await m.certificate(WEB);
  state.failing = true;
  let attempts = 0;
  while (clock.now() < first.notAfter.getTime() - 1000 && attempts < 40) {
    clock.advanceTo(clock.nextDue()!);
    attempts++;
    await eventually(() => m.status()[0]!.failures === attempts && m.status()[0]!.nextRenewal, 30_000, 'a failed attempt');
    const due = clock.nextDue()!;
    if (clock.now() < first.notAfter.getTime()) t.true(due < first.notAfter.getTime(), 'the next try is before expiry while the certificate is valid');
  }
  t.true(attempts > 8, `with hour-long backoff it still tried ${attempts} times before expiry`);
  clock.advanceTo(first.notAfter.getTime() + 1000);
  const err = await t.throwsAsync(m.certificate(WEB));
  t.regex(err!.message, /unreachable/);
});

test('a returned certificate for another identity is rejected (CA stub at the wire level)', async (t) => {
  const dir = await tempDir(t);
  const ca = await startLocalCa({ dir: path.join(dir, 'ca'), trustDomain: 'cluster.local', rotationPollMs: 0 });
  t.teardown(() => ca.close());
  const store = new CaStore(path.join(dir, 'ca'));
  const root = loadSigner(await readFile(store.file('rootCert'), 'utf8'), await readFile(store.file('rootKey'), 'utf8'), '', 'test root');
  // a CA that signs the CSR's key for DB whatever was asked: a compromised or buggy CA
  const server = new grpc.Server();
  let served = 0;
  server.addService(certificateService().service, {
    createCertificate(call: grpc.ServerUnaryCall<CreateCertificateRequestWire, unknown>, cb: grpc.sendUnaryData<unknown>) {
      served++;
      const csr = parseCsr(call.request.csr);
      const now = Date.now();
      const leaf = signLeaf(root, { publicKey: csr.publicKey, subject: [], uris: [DB], extKeyUsage: ['serverAuth', 'clientAuth'], notBefore: new Date(now - 60_000), notAfter: new Date(now + HOUR) });
      cb(null, { certChain: [leaf, root.certPem] });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  t.teardown(() => server.forceShutdown());
  const client = createCertificateClient({ address: `127.0.0.1:${port}`, credentials: grpc.credentials.createInsecure() });
  t.teardown(() => client.close());
  const registry = new Registry();
  const m = new IdentityManager({ node: NODE, signer: client, registry, initialTrustBundle: ca.trustBundle(), prefetch: false, retryInitialMs: 60_000 });
  t.teardown(() => m.close());
  m.onSnapshot(snapshot([workload('web-1', 'web', NODE), workload('db-1', 'db', NODE)], ca.trustBundle()));
  const err = await t.throwsAsync(m.certificate(WEB), { instanceOf: CertificateCheckError });
  t.regex(err!.message, /returned a certificate for spiffe:\/\/cluster\.local\/ns\/shop\/sa\/db, not for spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web as asked: rejected/);
  t.is(await counter(registry, { result: 'invalid_certificate' }), 1);
  t.is(m.status()[0]!.notAfter, undefined, 'nothing is held for web');
  // until the backoff is over, callers get the failure without another request to the CA
  await t.throwsAsync(m.certificate(WEB), { message: /no certificate for .*web yet: the last request failed .*not for .*web as asked/ });
  t.is(served, 1);
});

test('identities whose pods left the node are dropped; identities with no pod on the node are not requested', async (t) => {
  const clock = new FakeClock();
  const { ca, calls, signer } = await inProcessCa(t, clock);
  const { m } = manager(t, clock, signer, ca, { prefetch: false });
  m.onSnapshot(snapshot([workload('web-1', 'web', NODE), workload('db-1', 'db', 'node-b')], ca.trustBundle()));
  await m.certificate(WEB);
  t.deepEqual(m.status().map((s) => s.spiffeId), [WEB]);
  await t.throwsAsync(m.certificate(DB), { message: /no pod with identity spiffe:\/\/cluster\.local\/ns\/shop\/sa\/db runs on node node-a/ });
  t.deepEqual(calls.map((c) => c.identity), [WEB], 'the CA was not asked for db');
  m.onSnapshot(snapshot([workload('db-1', 'db', 'node-b')], ca.trustBundle()));
  t.deepEqual(m.status(), [], 'web dropped with its pod');
  t.is(clock.timers(), 0, 'and its renewal timer');
  await t.throwsAsync(m.certificate(WEB), { message: /no pod with identity/ });
});

test('a short-lived certificate renews at half of the validity it was issued with, not at once (notBefore is backdated)', async (t) => {
  // The CA backdates notBefore by BACKDATE_MS (60 s) for skewed clocks. Half-life counted
  // from notBefore would put the renewal of a 20 s certificate 20 s in the past: renewed at
  // once, again and again. It is counted from when the certificate was received.
  const clock = new FakeClock();
  const { ca, calls, signer } = await inProcessCa(t, clock, { workloadTtlMs: 20_000 });
  const { m } = manager(t, clock, signer, ca, { prefetch: false });
  m.onSnapshot(snapshot([workload('web-1', 'web', NODE)], ca.trustBundle()));
  let cert = await m.certificate(WEB);
  t.is(cert.notAfter.getTime() - cert.notBefore.getTime(), 20_000 + BACKDATE_MS, 'notBefore is backdated');
  for (let i = 0; i < 3; i++) {
    // X.509 times are whole seconds: the validity left at receipt is 19–20 s
    const left = cert.notAfter.getTime() - clock.now();
    const delay = clock.nextDue()! - clock.now();
    t.true(left > 19_000, `${left} ms left at receipt`);
    t.true(delay >= left * 0.45 && delay <= left * 0.55, `renewal ${i} due in ${delay} ms (half of ${left} ms ± 5 %)`);
    clock.advance(delay);
    const prev = cert;
    cert = await eventually(async () => {
      const c = await m.certificate(WEB);
      return c !== prev && c;
    }, 30_000, `renewal ${i}`);
  }
  t.is(calls.length, 4, 'one initial request and three renewals, no more');
});

test('meshed local identities are fetched ahead, on the snapshot', async (t) => {
  const clock = new FakeClock();
  const { ca, calls, signer } = await inProcessCa(t, clock);
  const { m } = manager(t, clock, signer, ca);
  m.onSnapshot(snapshot([workload('web-1', 'web', NODE), workload('plain', 'plain', NODE, false), workload('db-1', 'db', 'node-b')], ca.trustBundle()));
  await eventually(() => m.status()[0]?.notAfter, 30_000, 'the prefetched certificate');
  t.deepEqual(calls.map((c) => c.identity), [WEB], 'only the meshed pod of this node');
  const before = calls.length;
  await m.certificate(WEB);
  t.is(calls.length, before, 'served from the cache');
});

test('when the trust bundle gains a root, certificates move under it within the spread, and verify against the new bundle', async (t) => {
  const clock = new FakeClock();
  const { ca, signer } = await inProcessCa(t, clock);
  const { m } = manager(t, clock, signer, ca, { prefetch: false, rootChangeSpreadMs: 30_000 });
  m.onSnapshot(snapshot([workload('web-1', 'web', NODE)], ca.trustBundle()));
  const old = await m.certificate(WEB);
  const oldRoot = ca.trustBundle()[0]!;
  clock.advance(HOUR);
  await ca.rotate({ overlapMs: 6 * HOUR });
  const bundle = ca.trustBundle();
  m.onSnapshot(snapshot([workload('web-1', 'web', NODE)], bundle));
  t.deepEqual(m.trustBundle(), bundle);
  const due = clock.nextDue()!;
  t.true(due - clock.now() <= 30_000, `renewal pulled in to ${(due - clock.now()) / 1000} s from now`);
  t.is(await m.certificate(WEB), old, 'the old certificate still serves: its root is in the bundle');
  clock.advanceTo(due);
  const fresh = await eventually(async () => {
    const c = await m.certificate(WEB);
    return c !== old && c;
  });
  t.is(verifyChain([fresh.certChainPem], bundle, clock.now()), bundle[1]!, 'the new certificate chains to the new root');
  t.is(verifyChain([old.certChainPem], bundle, clock.now()), oldRoot, 'the old one still verifies during the overlap');
});

test('at most maxConcurrentRequests requests are in flight; the rest queue and every identity gets its certificate', async (t) => {
  const clock = new FakeClock();
  const { ca, signer } = await inProcessCa(t, clock);
  // the CA answers only when the test lets a request through
  let open = 0;
  let most = 0;
  const gates: (() => void)[] = [];
  const gated: CertificateSigner = {
    async createCertificate(req) {
      open++;
      most = Math.max(most, open);
      await new Promise<void>((go) => gates.push(go));
      open--;
      return signer.createCertificate(req);
    },
    close() {},
  };
  const { m } = manager(t, clock, gated, ca, { maxConcurrentRequests: 3 });
  const pods = Array.from({ length: 10 }, (_, i) => workload(`p${i}`, `sa${i}`, NODE));
  m.onSnapshot(snapshot(pods, ca.trustBundle())); // prefetches all ten
  await eventually(() => gates.length === 3, 20_000, 'three requests at the CA');
  await new Promise((r) => setTimeout(r, 200)); // RSA keys take time: no fourth came meanwhile
  t.is(gates.length, 3);
  while (gates.length > 0 || m.status().some((s) => !s.notAfter)) {
    gates.shift()?.();
    await new Promise((r) => setTimeout(r, 20));
  }
  t.is(most, 3, 'never more than three at the CA at once');
  t.is(m.status().filter((s) => s.notAfter).length, 10);
});

test.serial(
  "key generation takes at most half of libuv's threadpool, however many requests are in flight: file-system calls (the CNI plugin's ADD) are not queued behind it",
  async (t) => {
    const clock = new FakeClock();
    const { ca, signer } = await inProcessCa(t, clock);
    const { m } = manager(t, clock, signer, ca, { maxConcurrentRequests: 8 });
    let most = 0;
    const sample = setInterval(() => (most = Math.max(most, keyGenerationsInFlight())), 1);
    t.teardown(() => clearInterval(sample));
    const pods = Array.from({ length: 12 }, (_, i) => workload(`k${i}`, `key${i}`, NODE));
    m.onSnapshot(snapshot(pods, ca.trustBundle())); // prefetches all twelve, eight requests at once
    await eventually(() => m.status().filter((s) => s.notAfter).length === 12, 60_000, 'twelve certificates');
    t.true(most >= 1, 'keys were generated');
    t.true(most <= KEY_GENERATION_SLOTS, `at most ${KEY_GENERATION_SLOTS} at once (saw ${most})`);
    t.is(keyGenerationsInFlight(), 0, 'every slot given back');
  },
);

test('closing the manager lets queued requests go: they fail, none hangs', async (t) => {
  const clock = new FakeClock();
  const { ca } = await inProcessCa(t, clock);
  const never: CertificateSigner = { createCertificate: () => new Promise(() => {}), close() {} };
  const { m } = manager(t, clock, never, ca, { maxConcurrentRequests: 1, prefetch: false });
  m.onSnapshot(snapshot([workload('a', 'a', NODE), workload('b', 'b', NODE)], ca.trustBundle()));
  void m.certificate('spiffe://cluster.local/ns/shop/sa/a').catch(() => undefined); // holds the one slot
  const queued = m.certificate('spiffe://cluster.local/ns/shop/sa/b');
  await new Promise((r) => setTimeout(r, 300));
  m.close();
  await t.throwsAsync(queued, { message: /stopped/ });
});
