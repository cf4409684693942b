// The agent's identity manager: the certificates of the workload identities that have a
// pod on this node, from the control plane's CA (IdentityProvider for the HBONE transport).
//
// Per identity: an RSA key pair (node:crypto), a CSR carrying the SPIFFE ID (csr.ts, node:crypto),
// CertificateService/CreateCertificate, then checks of what came back — the leaf is an
// X.509-SVID with exactly the SPIFFE ID asked for, over our key, chaining to the trust
// bundle — before it is used. Istio's default: "Default TTL 24 h, renewed at half-life";
// here at half-life ± jitter, so a node's identities do not all renew at the same instant.
// A failed request is retried with exponential backoff, faster as expiry nears; the old
// certificate serves until it is replaced or expires, and an expired one is never handed out.
//
// On every snapshot: identities with no pod on this node any more are dropped; meshed local
// pods' identities are fetched ahead of their first connection; when the trust bundle gains
// a root (a rotation started) every certificate not under it is renewed within a short
// spread, well inside the rotation overlap.
import { X509Certificate, createPublicKey, generateKeyPair as generateKeyPairCb } from 'node:crypto';
import { promisify } from 'node:util';
import { buildCsr } from './csr.js';
import { Registry } from '../../common/prometheus.js';
import { CertificateRequestError, type CertificateSigner } from '../../control/api/certificate-signer.js';
import { equalJitterBackoff } from '../../common/backoff.js';
import { systemClock, type Clock, type ClockTimer } from '../../common/clock.js';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { Slots } from '../../common/slots.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { splitPemCertificates, svidSpiffeId, verifyChain } from '../../control/api/x509-svid.js';
import type { IdentityProvider, WorkloadCertificate } from './identity.js';
import { createIdentityMetrics, type CertificateRequestKind, type CertificateRequestResult, type IdentityMetrics } from './identity-metrics.js';

const log = logger('agent/identity');
const generateKeyPair = promisify(generateKeyPairCb);

export interface IdentityManagerOptions {
  /** the node this agent runs on */
  node: string;
  /**
   * the CA client (CertificateService over the control plane's TLS channel); a promise of it
   * when the agent serves the certificates it restored before it loads gRPC (agent.ts)
   */
  signer: CertificateSigner | Promise<CertificateSigner>;
  /** roots to check issued certificates against until a snapshot brings the trust bundle (the --root-cert file) */
  initialTrustBundle?: readonly string[];
  /** requested certificate lifetime in seconds (default 0: the CA's default, 24 h) */
  validitySeconds?: number;
  /** renewal at half-life ± jitter × lifetime (default 0.05) */
  jitter?: number;
  /** backoff after a failed request: initial delay, doubling up to max (defaults 1 s, 60 s) */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** when the trust bundle gains a root, certificates not under it renew within this (default 30 s) */
  rootChangeSpreadMs?: number;
  /** fetch meshed local pods' certificates on each snapshot, before their first connection (default true) */
  prefetch?: boolean;
  /**
   * requests (key, CSR, CreateCertificate) in flight at once; the others queue in order
   * (default 8). A node whose 110 pods start together asks the CA a few at a time, not all
   * at once, and holds fewer keys, CSRs and calls in memory meanwhile.
   */
  maxConcurrentRequests?: number;
  clock?: Clock;
  /** in [0, 1) (default Math.random) */
  random?: () => number;
  /** where the metrics go (default: a registry of its own) */
  registry?: Registry;
  /** called after a certificate was obtained (or restored): e.g. to persist held() */
  onChange?: () => void;
}

/** A certificate as the agent keeps it across its own restarts (agent/lifecycle/last-good.ts). */
export interface HeldCertificate {
  spiffeId: string;
  certChainPem: string;
  keyPem: string;
  /** when it was due for renewal (ms since the epoch) */
  renewAt: number;
}

interface Entry {
  spiffeId: string;
  cert: WorkloadCertificate | undefined;
  /** the bundle root the current certificate chains to */
  root: string | undefined;
  /** for /debug: the current leaf's serial and its root's SHA-256 fingerprint */
  serial: string | undefined;
  rootFingerprint: string | undefined;
  fetching: Promise<WorkloadCertificate> | undefined;
  timer: ClockTimer | undefined;
  /** when the timer fires (ms) */
  dueAt: number;
  failures: number;
  lastError: string | undefined;
  dropped: boolean;
}

export interface IdentityStatus {
  spiffeId: string;
  notBefore?: string;
  notAfter?: string;
  /** the leaf's serial number (hex, as openssl prints it) */
  serial?: string;
  /** SHA-256 fingerprint of the bundle root the certificate chains to (as X509Certificate.fingerprint256) */
  root?: string;
  nextRenewal?: string;
  failures: number;
  lastError?: string;
}

/** A certificate that came back but is not what was asked for. */
export class CertificateCheckError extends NodemeshError {
  constructor(message: string) {
    super('NM_ERR_IDENTITY', message);
    this.name = 'CertificateCheckError';
  }
}

export class IdentityManager implements IdentityProvider {
  private readonly entries = new Map<string, Entry>();
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly metrics: IdentityMetrics;
  private bundle: string[];
  private snapshot: Snapshot | undefined;
  private closed = false;
  /** requests in flight, and those waiting for one of them to finish */
  private readonly requests: Slots;

  constructor(private readonly opts: IdentityManagerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.bundle = [...(opts.initialTrustBundle ?? [])];
    this.requests = new Slots(opts.maxConcurrentRequests ?? 8);
    this.metrics = createIdentityMetrics(opts.registry ?? new Registry(), () => {
      const out = new Map<string, number>();
      for (const e of this.entries.values()) if (e.cert) out.set(e.spiffeId, (e.cert.notAfter.getTime() - this.clock.now()) / 1000);
      return out;
    });
  }

  trustBundle(): string[] {
    return [...this.bundle];
  }

  certificate(spiffeId: string): Promise<WorkloadCertificate> {
    if (this.closed) return Promise.reject(new NodemeshError('NM_ERR_IDENTITY', 'the identity manager is stopped'));
    const e = this.entries.get(spiffeId);
    const now = this.clock.now();
    if (e?.cert && e.cert.notAfter.getTime() > now) return Promise.resolve(e.cert);
    if (e?.fetching) return e.fetching;
    if (e && e.failures > 0 && e.timer) {
      // backing off: connections must not turn a CA outage into a request storm
      return Promise.reject(
        new NodemeshError('NM_ERR_IDENTITY', `no certificate for ${spiffeId} yet: the last request failed (${e.lastError}); next attempt at ${new Date(e.dueAt).toISOString()}`),
      );
    }
    if (this.snapshot && !this.localIdentities().has(spiffeId)) {
      return Promise.reject(
        new NodemeshError('NM_ERR_IDENTITY', `no pod with identity ${spiffeId} runs on node ${this.opts.node} (snapshot v${this.snapshot.version}): the CA would refuse it`),
      );
    }
    return this.fetch(e ?? this.add(spiffeId), 'initial');
  }

  /** Applies a snapshot: trust bundle, identities dropped, identities fetched ahead. */
  onSnapshot(s: Snapshot): void {
    if (this.closed) return;
    this.snapshot = s;
    if (s.trustBundle.length > 0) this.setBundle(s.trustBundle);
    const local = this.localIdentities();
    for (const e of [...this.entries.values()]) {
      if (!local.has(e.spiffeId)) this.drop(e, `no pod with this identity on node ${this.opts.node} any more`);
    }
    if (this.opts.prefetch ?? true) {
      for (const w of s.workloads) {
        if (w.node !== this.opts.node || !w.meshed || this.entries.has(w.spiffeId)) continue;
        this.fetch(this.add(w.spiffeId), 'initial').catch(() => undefined); // retried by its timer; logged in fetch
      }
    }
  }

  /** The certificates held now, with their renewal times, for the next agent on this node. */
  held(): HeldCertificate[] {
    const now = this.clock.now();
    return [...this.entries.values()].flatMap((e) =>
      e.cert && e.cert.notAfter.getTime() > now ? [{ spiffeId: e.spiffeId, certChainPem: e.cert.certChainPem, keyPem: e.cert.keyPem, renewAt: e.timer ? e.dueAt : now }] : [],
    );
  }

  /**
   * Takes up certificates the agent before this one held (a restart or an upgrade on this
   * node), each checked as a fresh one is (its SPIFFE ID, our key, a chain to the trust
   * bundle, valid now); renewal stays when it was due, so a restart neither renews early
   * nor late. Returns how many were taken up; the others are fetched as usual.
   */
  restore(held: readonly HeldCertificate[]): number {
    let n = 0;
    const now = this.clock.now();
    for (const h of held) {
      if (this.closed || this.entries.get(h.spiffeId)?.cert) continue;
      try {
        const publicPem = createPublicKey(h.keyPem).export({ type: 'spki', format: 'pem' }) as string;
        const { cert, root } = checkIssued(splitPemCertificates(h.certChainPem), { spiffeId: h.spiffeId, keyPem: h.keyPem, publicPem }, this.bundle, now);
        const e = this.entries.get(h.spiffeId) ?? this.add(h.spiffeId);
        e.cert = cert;
        e.root = root;
        e.serial = new X509Certificate(cert.certChainPem).serialNumber;
        e.rootFingerprint = new X509Certificate(root).fingerprint256;
        const latest = cert.notAfter.getTime() - (cert.notAfter.getTime() - now) * 0.1;
        this.schedule(e, Math.max(now, Math.min(h.renewAt, latest)));
        n++;
      } catch (err) {
        log.info({ identity: h.spiffeId, err: (err as Error).message }, 'a certificate the previous agent held is not usable; fetching a new one');
      }
    }
    if (n > 0) log.info({ restored: n }, 'certificates taken up from the previous agent on this node');
    return n;
  }

  /** What the manager holds, for /debug. */
  status(): IdentityStatus[] {
    return [...this.entries.values()].map((e) => {
      const s: IdentityStatus = { spiffeId: e.spiffeId, failures: e.failures };
      if (e.cert) {
        s.notBefore = e.cert.notBefore.toISOString();
        s.notAfter = e.cert.notAfter.toISOString();
        if (e.serial) s.serial = e.serial;
        if (e.rootFingerprint) s.root = e.rootFingerprint;
      }
      if (e.timer) s.nextRenewal = new Date(e.dueAt).toISOString();
      if (e.lastError) s.lastError = e.lastError;
      return s;
    });
  }

  close(): void {
    this.closed = true;
    this.requests.releaseWaiters(); // they see `closed` and give up
    for (const e of this.entries.values()) {
      e.timer?.cancel();
      e.dropped = true;
    }
    this.entries.clear();
  }

  private localIdentities(): Set<string> {
    return new Set(this.snapshot?.workloads.filter((w) => w.node === this.opts.node).map((w) => w.spiffeId) ?? []);
  }

  private add(spiffeId: string): Entry {
    const e: Entry = { spiffeId, cert: undefined, root: undefined, serial: undefined, rootFingerprint: undefined, fetching: undefined, timer: undefined, dueAt: 0, failures: 0, lastError: undefined, dropped: false };
    this.entries.set(spiffeId, e);
    return e;
  }

  private drop(e: Entry, why: string): void {
    e.timer?.cancel();
    e.timer = undefined;
    e.dropped = true;
    this.entries.delete(e.spiffeId);
    log.info({ identity: e.spiffeId, why }, 'identity dropped');
  }

  /**
   * A rotation started (the bundle gained a root) or a root went: every certificate that is
   * not under a new root, or whose root is gone, is renewed soon, spread out over
   * rootChangeSpreadMs so a node's identities do not hit the CA at once.
   */
  private setBundle(next: readonly string[]): void {
    const before = new Set(this.bundle);
    this.bundle = [...next];
    const added = before.size > 0 ? this.bundle.filter((r) => !before.has(r)) : [];
    const spread = this.opts.rootChangeSpreadMs ?? 30_000;
    let moved = 0;
    for (const e of this.entries.values()) {
      if (!e.cert || !e.root || e.fetching) continue;
      const gone = !this.bundle.includes(e.root);
      const behind = added.length > 0 && !added.includes(e.root);
      if (!gone && !behind) continue;
      const at = this.clock.now() + Math.floor(this.random() * spread);
      if (!e.timer || at < e.dueAt) this.schedule(e, at);
      moved++;
    }
    if (moved > 0) log.info({ roots: this.bundle.length, added: added.length, renewing: moved }, 'trust bundle changed; renewing certificates under its newest roots');
  }

  private fetch(e: Entry, kind: CertificateRequestKind): Promise<WorkloadCertificate> {
    e.timer?.cancel();
    e.timer = undefined;
    const p = this.request(e.spiffeId).then(
      ({ cert, root }) => {
        if (e.fetching === p) e.fetching = undefined;
        this.metrics.requests.inc({ kind, result: 'success' });
        if (e.dropped || this.closed) return cert;
        e.cert = cert;
        e.root = root;
        e.serial = new X509Certificate(cert.certChainPem).serialNumber;
        e.rootFingerprint = new X509Certificate(root).fingerprint256;
        e.failures = 0;
        e.lastError = undefined;
        const at = this.renewalTime(cert);
        this.schedule(e, at);
        log.info({ identity: e.spiffeId, kind, notAfter: cert.notAfter.toISOString(), renewAt: new Date(at).toISOString() }, 'certificate obtained');
        this.opts.onChange?.();
        return cert;
      },
      (err: Error) => {
        if (e.fetching === p) e.fetching = undefined;
        const result = classify(err);
        this.metrics.requests.inc({ kind, result });
        e.failures++;
        e.lastError = err.message;
        if (!e.dropped && !this.closed) {
          const at = this.retryTime(e);
          this.schedule(e, at);
          log.warn({ identity: e.spiffeId, kind, result, failures: e.failures, retryAt: new Date(at).toISOString(), validUntil: e.cert?.notAfter.toISOString() }, err.message);
        }
        throw err;
      },
    );
    e.fetching = p;
    return p;
  }

  /**
   * half-life ± jitter × lifetime, clamped well before expiry. The lifetime counts from
   * when the certificate came (called then), not from notBefore: the CA backdates notBefore
   * (a minute, for skewed clocks), which would put half-life of a certificate shorter than
   * two minutes in the past — renewed at once, again and again.
   */
  private renewalTime(cert: WorkloadCertificate): number {
    const now = this.clock.now();
    const end = cert.notAfter.getTime();
    const start = Math.min(Math.max(cert.notBefore.getTime(), now), end);
    const life = end - start;
    const j = this.opts.jitter ?? 0.05;
    const at = start + life * (0.5 + j * (2 * this.random() - 1));
    return Math.max(now, Math.min(at, end - life * 0.1));
  }

  /** exponential backoff with jitter; while a certificate is still valid, within half of what is left of it */
  private retryTime(e: Entry): number {
    const initial = this.opts.retryInitialMs ?? 1000;
    const max = this.opts.retryMaxMs ?? 60_000;
    let delay = equalJitterBackoff({ baseMs: initial, maxMs: max }, e.failures - 1, this.random);
    const now = this.clock.now();
    if (e.cert && e.cert.notAfter.getTime() > now) delay = Math.min(delay, Math.max(100, (e.cert.notAfter.getTime() - now) / 2));
    return now + delay;
  }

  private schedule(e: Entry, at: number): void {
    e.timer?.cancel();
    e.dueAt = at;
    e.timer = this.clock.setTimeout(() => {
      e.timer = undefined;
      if (e.dropped || this.closed || e.fetching) return;
      this.fetch(e, e.cert ? 'renewal' : 'initial').catch(() => undefined); // rescheduled in fetch
    }, at - this.clock.now());
  }

  /** key, CSR, CreateCertificate, and the checks of what came back: at most maxConcurrentRequests at once */
  private async request(spiffeId: string): Promise<{ cert: WorkloadCertificate; root: string }> {
    await this.requests.take();
    try {
      if (this.closed) throw new NodemeshError('NM_ERR_IDENTITY', 'the identity manager is stopped');
      return await this.requestNow(spiffeId);
    } finally {
      // after close() the waiters were let go without a slot: the count no longer matters
      if (!this.closed) this.requests.give();
    }
  }

  private async requestNow(spiffeId: string): Promise<{ cert: WorkloadCertificate; root: string }> {
    const { privateKey: keyPem, publicKey: publicPem } = await generateWorkloadKey();
    const csrPem = buildCsr(keyPem, spiffeId);
    const chain = await (await this.opts.signer).createCertificate({ csrPem, identity: spiffeId, validitySeconds: this.opts.validitySeconds ?? 0 });
    return checkIssued(chain, { spiffeId, keyPem, publicPem }, this.bundle, this.clock.now());
  }
}

/**
 * Workload keys are RSA-2048, generated on libuv's threadpool (4 threads unless
 * UV_THREADPOOL_SIZE says otherwise), the one FIFO queue every file-system call and DNS lookup
 * of the process also waits in. A node whose pods all need certificates at once (an agent's
 * start, a new root) kept the pool full with key generations: with 8 in flight a `stat`
 * waited 0.5–1.3 s on this 2-core VM, and the CNI plugin's ADDs, which stat the pod's netns
 * in the enrollment's one-at-a-time queue, ran past the plugin's 20 s deadline on a 500-pod
 * node (the bench's 600-pod lab failed so). At most half the pool generates keys at once; the
 * rest of the CA requests wait for a slot here, in order. It costs no certificate throughput:
 * key generation is CPU-bound, and a node has fewer cores than the pool has threads.
 */
export const KEY_GENERATION_SLOTS = Math.max(1, Math.floor((Number(process.env.UV_THREADPOOL_SIZE) || 4) / 2));
const keyGeneration = new Slots(KEY_GENERATION_SLOTS);

/** Key generations running now (for tests). */
export function keyGenerationsInFlight(): number {
  return keyGeneration.inUse;
}

async function generateWorkloadKey(): Promise<{ privateKey: string; publicKey: string }> {
  await keyGeneration.take();
  try {
    return await generateKeyPair('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
  } finally {
    keyGeneration.give();
  }
}

/**
 * What the CA returned must be the certificate asked for: an X.509-SVID whose one URI SAN is
 * `spiffeId`, certifying our public key, valid now, chaining to the trust bundle.
 */
export function checkIssued(
  chain: readonly string[],
  asked: { spiffeId: string; keyPem: string; publicPem: string },
  bundle: readonly string[],
  now: number,
): { cert: WorkloadCertificate; root: string } {
  const { spiffeId, keyPem, publicPem } = asked;
  if (chain.length === 0) throw new CertificateCheckError(`the CA returned no certificate for ${spiffeId}`);
  let got: string;
  try {
    got = svidSpiffeId(chain[0]!);
  } catch (err) {
    throw new CertificateCheckError(`the CA returned a certificate for ${spiffeId} that is not a valid X.509-SVID: ${(err as Error).message}`);
  }
  if (got !== spiffeId) throw new CertificateCheckError(`the CA returned a certificate for ${got}, not for ${spiffeId} as asked: rejected`);
  const leaf = new X509Certificate(chain[0]!);
  const ours = createPublicKey(publicPem).export({ type: 'spki', format: 'der' });
  if (!leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(ours)) throw new CertificateCheckError(`the certificate returned for ${spiffeId} certifies another key than the one in our CSR: rejected`);
  let root: string;
  try {
    root = verifyChain(chain, bundle, now);
  } catch (err) {
    throw new CertificateCheckError(`the certificate returned for ${spiffeId} does not verify against the trust bundle (${bundle.length} roots): ${(err as Error).message}`);
  }
  // leaf and intermediates; the self-signed root stays out of the chain a peer is sent
  const certChainPem = chain.filter((pem, i) => i === 0 || !isSelfSigned(pem)).join('');
  return {
    cert: { spiffeId, certChainPem, keyPem, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo) },
    root,
  };
}

function isSelfSigned(pem: string): boolean {
  const x = new X509Certificate(pem);
  return x.checkIssued(x) && x.verify(x.publicKey);
}

function classify(err: Error): CertificateRequestResult {
  if (err instanceof CertificateCheckError) return 'invalid_certificate';
  if (err instanceof CertificateRequestError) return err.refused ? 'refused' : 'unavailable';
  return 'error';
}
