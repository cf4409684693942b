// The mesh's certificate authority. `CertificateAuthority` is the plug-in point (an external
// CA — Vault, cert-manager, a cloud CA — would implement it); `LocalCa` is the one built in:
// a root generated on first start and kept in the CA dir (store.ts), or an
// operator-supplied root or intermediate (--ca-cert/--ca-key[/--ca-chain]).
//
// Workload certificates are X.509-SVIDs (see certificates.ts for the extensions): one
// URI SAN, the SPIFFE ID; no subject; short-lived. Root rotation (generated roots): a new
// root is made and signed with at once; the previous one stays in the trust bundle for an
// overlap (default: the longest workload certificate lifetime, so every leaf it signed has
// expired or been renewed by the time it goes), then is dropped.
import { X509Certificate, createPublicKey, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { systemClock, type Clock, type ClockTimer } from '../../common/clock.js';
import { parseWorkloadSpiffeId } from '../api/x509-svid.js';
import { generateRsaKeyPair, loadSigner, parseCsr, selfSignedCa, signLeaf, type NameAttribute, type Signer } from './certificates.js';
import { CaStore, type RotateRequest, type RotationState } from './store.js';

const log = logger('control/ca');

export const DEFAULT_WORKLOAD_TTL_MS = 24 * 3600_000;
export const DEFAULT_ROOT_TTL_MS = 10 * 365 * 24 * 3600_000;
/** notBefore is set this far in the past, for clocks of nodes that run a little behind */
export const BACKDATE_MS = 60_000;

export interface WorkloadCertificateRequest {
  /** PKCS#10 PEM; its public key is certified, its subject ignored */
  csrPem: string;
  spiffeId: string;
  /** 0/undefined: the CA's default; more than the maximum is refused */
  ttlSeconds?: number;
}

export interface ServerCertificateRequest {
  publicKeyPem: string;
  commonName: string;
  dnsNames: string[];
  ips: string[];
  ttlMs: number;
}

export interface CaRootInfo {
  fingerprint: string;
  subject: string;
  notAfter: string;
}

export interface CaStatus {
  mode: 'generated' | 'operator';
  trustDomain: string;
  /** oldest first; the last is the one signing now */
  roots: CaRootInfo[];
  signer: { subject: string; notAfter: string };
  rotation?: { id: string; rotatedAt: string; retireAt: string };
}

export interface CertificateAuthority {
  readonly trustDomain: string;
  /** An X.509-SVID for `spiffeId` over the CSR's key: leaf first, then the chain up to the root. Throws NM_ERR_IDENTITY for a bad request. */
  signWorkload(req: WorkloadCertificateRequest): string[];
  /** A TLS serving certificate (not an SVID) for the control plane itself, same chain shape. */
  signServer(req: ServerCertificateRequest): string[];
  /** PEM roots the mesh trusts, oldest first; the CA signs under the last. */
  trustBundle(): string[];
  /** Called after the roots or the signing certificate changed. Returns an unsubscribe function. */
  onChange(listener: () => void): () => void;
  status(): CaStatus;
  close(): void;
}

/** A root or intermediate handed over in memory (the Kubernetes path: from a Secret, ca-secret.ts). */
export interface CaKeyMaterial {
  certPem: string;
  keyPem: string;
  /** intermediates up to and including the root ("" for a root) */
  chainPem: string;
  /** where it came from, for messages: `Secret nodemesh-system/cacerts` */
  what: string;
  /** the operator's (plug-in CA) or one nodemesh generated */
  mode: 'operator' | 'generated';
}

export interface LocalCaOptions {
  /** the CA state dir (created 0700); with `material` it receives only the public trust-bundle.pem */
  dir?: string;
  /** sign with this, kept by its owner (a Secret): no CA dir, no rotation by request */
  material?: CaKeyMaterial;
  trustDomain: string;
  /** operator-supplied signing certificate and key (PEM files); the chain file holds intermediates and the root */
  operator?: { certFile: string; keyFile: string; chainFile?: string };
  /** default and maximum lifetime of workload certificates (default 24 h) */
  workloadTtlMs?: number;
  /** lifetime of a generated root (default 10 years) */
  rootTtlMs?: number;
  /** how long a rotated-out root stays trusted (default: workloadTtlMs) */
  overlapMs?: number;
  /** how often the CA dir is checked for a rotation request (default 1000 ms; 0: never) */
  rotationPollMs?: number;
  clock?: Clock;
}

export async function startLocalCa(opts: LocalCaOptions): Promise<LocalCa> {
  const ca = new LocalCa(opts);
  await ca.init();
  return ca;
}

function subjectOf(pem: string): string {
  return new X509Certificate(pem).subject.replace(/\n/g, ', ');
}

function sameKey(certPem: string, keyPem: string): boolean {
  try {
    return createPublicKey(keyPem).export({ type: 'spki', format: 'der' }).equals(new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' }));
  } catch {
    return false;
  }
}

export class LocalCa implements CertificateAuthority {
  readonly trustDomain: string;
  readonly store: CaStore | undefined;
  private readonly clock: Clock;
  private readonly workloadTtlMs: number;
  private readonly overlapMs: number;
  private signer!: Signer;
  private previous: RotationState | undefined;
  private retireTimer: ClockTimer | undefined;
  private pollTimer: ClockTimer | undefined;
  private readonly listeners = new Set<() => void>();
  private rotating: Promise<unknown> | undefined;
  private closed = false;

  constructor(private readonly opts: LocalCaOptions) {
    this.trustDomain = opts.trustDomain;
    if (!opts.dir && !opts.material) throw new NodemeshError('NM_ERR_CA', 'the CA needs a CA dir (--ca-dir) or its key material from a Secret');
    this.store = opts.dir ? new CaStore(opts.dir) : undefined;
    this.clock = opts.clock ?? systemClock;
    this.workloadTtlMs = opts.workloadTtlMs ?? DEFAULT_WORKLOAD_TTL_MS;
    this.overlapMs = opts.overlapMs ?? this.workloadTtlMs;
    if (!(this.workloadTtlMs >= 1000)) throw new NodemeshError('NM_ERR_CA', `workload certificate TTL must be at least 1 s (got ${this.workloadTtlMs} ms)`);
  }

  async init(): Promise<void> {
    if (this.opts.material) {
      const m = this.opts.material;
      this.signer = loadSigner(m.certPem, m.keyPem, m.chainPem, m.what);
      log.info({ from: m.what, signer: subjectOf(this.signer.certPem), root: subjectOf(this.signer.rootPem) }, 'CA signs with the key material of a Secret');
      if (this.store) {
        await this.store.ensure();
        await this.store.writeTrustBundle(this.trustBundle());
      }
      return;
    }
    const store = this.store!;
    await store.ensure();
    if (this.opts.operator) {
      const o = this.opts.operator;
      const [cert, key, chain] = await Promise.all([readPem(o.certFile, '--ca-cert'), readPem(o.keyFile, '--ca-key'), o.chainFile ? readPem(o.chainFile, '--ca-chain') : '']);
      this.signer = loadSigner(cert, key, chain, `operator CA (${o.certFile})`);
      log.info({ signer: subjectOf(this.signer.certPem), root: subjectOf(this.signer.rootPem) }, 'CA signs with the operator-supplied certificate');
    } else {
      await this.initGenerated(store);
    }
    await store.writeTrustBundle(this.trustBundle());
    this.schedulePoll();
  }

  private async initGenerated(store: CaStore): Promise<void> {
    let root = await store.loadRoot();
    let rotation = await store.loadRotation();
    if (!root) {
      root = await this.generateRoot();
      await store.saveRoot(root.certPem, root.keyPem);
      log.info({ dir: store.dir, root: subjectOf(root.certPem) }, 'generated a new root CA (first start)');
    }
    if (rotation && root.certPem.trim() !== rotation.newRootPem.trim() && sameKey(rotation.newRootPem, root.keyPem)) {
      // a crash between writing the new key and the new certificate
      await store.saveRootCert(rotation.newRootPem);
      root = { certPem: rotation.newRootPem, keyPem: root.keyPem };
      log.warn({ dir: store.dir }, 'completed an interrupted root rotation');
    }
    this.signer = loadSigner(root.certPem, root.keyPem, '', `CA dir ${store.dir}`);
    if (rotation && Date.parse(rotation.retireAt) <= this.clock.now()) {
      await store.clearRotation();
      rotation = undefined;
    }
    if (rotation) {
      this.previous = rotation;
      this.scheduleRetire();
    }
  }

  private generateRoot(): Promise<{ certPem: string; keyPem: string }> {
    return generateRootCa({ trustDomain: this.trustDomain, now: this.clock.now(), ttlMs: this.opts.rootTtlMs ?? DEFAULT_ROOT_TTL_MS });
  }

  trustBundle(): string[] {
    const roots = this.previous ? [this.previous.previousRootPem, this.signer.rootPem] : [this.signer.rootPem];
    return [...new Set(roots.map((r) => r.trimEnd() + '\n'))];
  }

  signWorkload(req: WorkloadCertificateRequest): string[] {
    parseWorkloadSpiffeId(req.spiffeId, this.trustDomain);
    const csr = parseCsr(req.csrPem);
    if (csr.uris.length > 0 && (csr.uris.length !== 1 || csr.uris[0] !== req.spiffeId)) {
      throw new NodemeshError('NM_ERR_IDENTITY', `the CSR asks for URI SAN ${csr.uris.join(', ')} but the request is for ${req.spiffeId}: they must agree (or the CSR carries none)`);
    }
    const ttlMs = this.ttl(req.ttlSeconds);
    const now = this.clock.now();
    const leaf = signLeaf(this.signer, {
      publicKey: csr.publicKey,
      subject: [],
      uris: [req.spiffeId],
      extKeyUsage: ['serverAuth', 'clientAuth'],
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + ttlMs),
    });
    return [leaf, this.signer.certPem, ...this.signer.chainPems];
  }

  signServer(req: ServerCertificateRequest): string[] {
    const now = this.clock.now();
    const leaf = signLeaf(this.signer, {
      publicKey: req.publicKeyPem,
      subject: [{ shortName: 'CN', value: req.commonName }],
      dnsNames: req.dnsNames,
      ips: req.ips,
      extKeyUsage: ['serverAuth'],
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + req.ttlMs),
    });
    return [leaf, this.signer.certPem, ...this.signer.chainPems];
  }

  private ttl(ttlSeconds: number | undefined): number {
    if (ttlSeconds === undefined || ttlSeconds === 0) return this.workloadTtlMs;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 0) throw new NodemeshError('NM_ERR_IDENTITY', `validity ${ttlSeconds} s is not a positive whole number of seconds`);
    if (ttlSeconds * 1000 > this.workloadTtlMs) {
      throw new NodemeshError('NM_ERR_IDENTITY', `requested validity ${ttlSeconds} s exceeds the CA's maximum of ${this.workloadTtlMs / 1000} s`);
    }
    return ttlSeconds * 1000;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch (err) {
        log.error({ err }, 'CA change listener failed');
      }
    }
  }

  status(): CaStatus {
    const s: CaStatus = {
      mode: this.opts.material?.mode ?? (this.opts.operator ? 'operator' : 'generated'),
      trustDomain: this.trustDomain,
      roots: this.trustBundle().map((pem) => {
        const x = new X509Certificate(pem);
        return { fingerprint: x.fingerprint256, subject: x.subject.replace(/\n/g, ', '), notAfter: new Date(x.validTo).toISOString() };
      }),
      signer: { subject: subjectOf(this.signer.certPem), notAfter: this.signer.notAfter.toISOString() },
    };
    if (this.previous) s.rotation = { id: this.previous.id, rotatedAt: this.previous.rotatedAt, retireAt: this.previous.retireAt };
    return s;
  }

  /**
   * Root rotation: a new root signs from now on; the previous one stays in the trust bundle
   * for `overlapMs` (default: the CA's overlap), so certificates it signed keep verifying
   * until their holders renew them under the new root. One rotation at a time.
   */
  rotate(opts: { overlapMs?: number; id?: string } = {}): Promise<RotationState> {
    if (this.opts.material) {
      return Promise.reject(new NodemeshError('NM_ERR_CA', `the CA signs with ${this.opts.material.what}: rotate the root by replacing that Secret's keys and restarting the control plane's replicas (rotation with an overlap is not supported for a root kept in a Secret yet)`));
    }
    if (this.opts.operator) {
      return Promise.reject(new NodemeshError('NM_ERR_CA', 'the CA signs with an operator-supplied certificate: rotate it by restarting with the new --ca-cert/--ca-key (an intermediate under the same root changes no trust)'));
    }
    if (this.rotating) return Promise.reject(new NodemeshError('NM_ERR_CA', 'a root rotation is being made; try again when it is done'));
    if (this.previous) {
      return Promise.reject(
        new NodemeshError('NM_ERR_CA', `a root rotation (${this.previous.id}) is in its overlap: the previous root stays trusted until ${this.previous.retireAt}; rotate again after that`),
      );
    }
    const overlapMs = opts.overlapMs ?? this.overlapMs;
    const store = this.store!;
    const p = (async () => {
      const next = await this.generateRoot();
      const now = this.clock.now();
      const state: RotationState = {
        id: opts.id ?? randomUUID(),
        rotatedAt: new Date(now).toISOString(),
        previousRootPem: this.signer.rootPem,
        newRootPem: next.certPem,
        retireAt: new Date(now + overlapMs).toISOString(),
      };
      // the record first: a crash after it still trusts the previous root
      await store.saveRotation(state);
      await store.saveRoot(next.certPem, next.keyPem);
      this.signer = loadSigner(next.certPem, next.keyPem, '', `CA dir ${store.dir}`);
      this.previous = state;
      await store.writeTrustBundle(this.trustBundle());
      this.scheduleRetire();
      log.info({ id: state.id, root: subjectOf(next.certPem), retireAt: state.retireAt }, 'root rotated: signing with the new root; the previous root stays trusted until retireAt');
      this.emit();
      return state;
    })();
    this.rotating = p;
    return p.finally(() => (this.rotating = undefined));
  }

  private scheduleRetire(): void {
    this.retireTimer?.cancel();
    if (!this.previous || this.closed) return;
    const at = Date.parse(this.previous.retireAt);
    this.retireTimer = this.clock.setTimeout(() => void this.retire(), at - this.clock.now());
  }

  private async retire(): Promise<void> {
    const prev = this.previous;
    if (!prev || this.closed) return;
    this.previous = undefined;
    try {
      await this.store?.clearRotation();
      await this.store?.writeTrustBundle(this.trustBundle());
    } catch (err) {
      log.error({ err }, 'could not record the end of the root rotation in the CA dir; the previous root is dropped from the bundle anyway');
    }
    log.info({ id: prev.id, dropped: subjectOf(prev.previousRootPem) }, 'rotation overlap over: previous root dropped from the trust bundle');
    this.emit();
  }

  private schedulePoll(): void {
    const every = this.opts.rotationPollMs ?? 1000;
    if (every <= 0 || this.closed || !this.store || this.opts.material) return;
    this.pollTimer = this.clock.setTimeout(() => {
      void this.pollRequest().finally(() => this.schedulePoll());
    }, every);
  }

  /** Handles a rotation request dropped in the CA dir (`nodemesh ca rotate`); answers in rotate-result.json. */
  async pollRequest(): Promise<void> {
    const store = this.store;
    if (!store) return;
    let req: RotateRequest | undefined;
    try {
      req = await store.takeRotateRequest();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'rotation request ignored');
      return;
    }
    if (!req) return;
    log.info({ id: req.id, overlapSeconds: req.overlapSeconds }, 'root rotation requested');
    try {
      const o: { overlapMs?: number; id: string } = { id: req.id };
      if (req.overlapSeconds !== undefined) o.overlapMs = req.overlapSeconds * 1000;
      const rotation = await this.rotate(o);
      await store.writeRotateResult({ id: req.id, ok: true, rotation });
    } catch (err) {
      log.warn({ id: req.id, err: (err as Error).message }, 'root rotation refused');
      await store.writeRotateResult({ id: req.id, ok: false, error: (err as Error).message }).catch(() => undefined);
    }
  }

  close(): void {
    this.closed = true;
    this.retireTimer?.cancel();
    this.pollTimer?.cancel();
    this.listeners.clear();
  }
}

async function readPem(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new NodemeshError('NM_ERR_CA', `${flag} ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** A new self-signed root for the trust domain (RSA: node-forge signs with RSA keys only). */
export async function generateRootCa(o: { trustDomain: string; now: number; ttlMs?: number }): Promise<{ certPem: string; keyPem: string }> {
  const { privateKeyPem } = await generateRsaKeyPair();
  const stamp = new Date(o.now).toISOString().slice(0, 19);
  const subject: NameAttribute[] = [
    { shortName: 'O', value: 'nodemesh' },
    { shortName: 'CN', value: `nodemesh root CA ${o.trustDomain} ${stamp}Z` },
  ];
  const certPem = selfSignedCa({
    keyPem: privateKeyPem,
    subject,
    trustDomain: o.trustDomain,
    notBefore: new Date(o.now - BACKDATE_MS),
    notAfter: new Date(o.now + (o.ttlMs ?? DEFAULT_ROOT_TTL_MS)),
  });
  return { certPem, keyPem: privateKeyPem };
}
