// The control plane's own TLS on the gRPC port (15012): a serving certificate from the
// mesh CA for its names and addresses, renewed at half-life and re-issued at once when the
// CA's signing root changes (a rotation), so it always chains to a root the agents hold;
// and the node CA, the only CA whose client certificates it asks for (node credentials).
//
// Client certificates are requested but not required at the TLS layer: a caller without a
// valid one still gets a gRPC answer (UNAUTHENTICATED, saying what to do), and is counted,
// instead of an opaque handshake failure. grpc-js hands the handlers the peer certificate
// only when the TLS layer verified it against the node CA.
import * as grpc from '@grpc/grpc-js';
import { isIP } from 'node:net';
import os from 'node:os';
import { X509Certificate } from 'node:crypto';
import { logger } from '../../common/log.js';
import { systemClock, type Clock, type ClockTimer } from '../../common/clock.js';
import type { CertificateAuthority } from './ca.js';
import { generateRsaKeyPair } from './certificates.js';
import { CONTROL_SERVER_NAME } from '../api/control-target.js';

const log = logger('control/serving-tls');

type CertificateProvider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/** The names the control plane is reached by on Kubernetes and locally. */
export const DEFAULT_SERVER_NAMES = [CONTROL_SERVER_NAME, `${CONTROL_SERVER_NAME}.cluster.local`, 'localhost', '127.0.0.1'];

export interface ServingTlsOptions {
  ca: CertificateAuthority;
  /** PEM certificates of the CA(s) that issue node credentials */
  nodeCaPems: string[];
  /** DNS names and IP addresses for the serving certificate */
  names: string[];
  /** serving certificate lifetime (default 24 h) */
  ttlMs?: number;
  clock?: Clock;
}

/** `names` plus the host's name and the bind address when it is a specific one. */
export function servingNames(bindHost: string, extra: readonly string[] = []): string[] {
  const names = [...DEFAULT_SERVER_NAMES, os.hostname(), ...extra];
  if (bindHost && bindHost !== '0.0.0.0' && bindHost !== '::' && bindHost !== '[::]') names.push(bindHost.replace(/^\[|\]$/g, ''));
  return [...new Set(names)];
}

export class ServingTls implements CertificateProvider {
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private identity: { certificate: Buffer; privateKey: Buffer; notAfter: Date } | undefined;
  private readonly caUpdate: { caCertificate: Buffer };
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private timer: ClockTimer | undefined;
  private unsubscribe: (() => void) | undefined;
  private issuing: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly opts: ServingTlsOptions) {
    this.clock = opts.clock ?? systemClock;
    this.ttlMs = opts.ttlMs ?? 24 * 3600_000;
    this.caUpdate = { caCertificate: Buffer.from(opts.nodeCaPems.join('')) };
  }

  /** Issues the first serving certificate; from then on renews it. */
  async start(): Promise<void> {
    await this.issue();
    this.unsubscribe = this.opts.ca.onChange(() => void this.issue().catch((err: Error) => log.error({ err }, 're-issuing the serving certificate after a CA change failed; retrying')));
  }

  /** Server credentials that follow this provider (requires start() first). */
  credentials(): grpc.ServerCredentials {
    // without a node CA (token authentication only) no client certificate is asked for
    return grpc.experimental.createCertificateProviderServerCredentials(this, this.opts.nodeCaPems.length ? this : null, false);
  }

  /** The serving chain now (leaf first). */
  chainPem(): string {
    return this.identity?.certificate.toString() ?? '';
  }

  private issue(): Promise<void> {
    // one at a time; a change during an issue re-issues after it
    const run = async () => {
      const { privateKeyPem, publicKeyPem } = await generateRsaKeyPair();
      const names = this.opts.names;
      const chain = this.opts.ca.signServer({
        publicKeyPem,
        commonName: 'nodemesh-control',
        dnsNames: names.filter((n) => !isIP(n)),
        ips: names.filter((n) => isIP(n)),
        ttlMs: this.ttlMs,
      });
      const leaf = new X509Certificate(chain[0]!);
      this.identity = { certificate: Buffer.from(chain.join('')), privateKey: Buffer.from(privateKeyPem), notAfter: new Date(leaf.validTo) };
      for (const l of this.identityListeners) l(this.identity);
      log.info({ notAfter: leaf.validTo, names }, 'serving certificate issued');
      const notBefore = Date.parse(leaf.validFrom);
      this.schedule(notBefore + (Date.parse(leaf.validTo) - notBefore) / 2);
    };
    const p = (this.issuing ?? Promise.resolve()).catch(() => undefined).then(run);
    this.issuing = p;
    return p;
  }

  /** renewal at half-life; a failed renewal is retried every 30 s (the current certificate serves meanwhile) */
  private schedule(at: number): void {
    this.timer?.cancel();
    if (this.closed) return;
    this.timer = this.clock.setTimeout(() => {
      this.issue().catch((err: Error) => {
        log.error({ err }, 'renewing the serving certificate failed; retrying in 30 s');
        this.schedule(this.clock.now() + 30_000);
      });
    }, at - this.clock.now());
  }

  // The first update is delivered on a later tick: grpc-js's server credentials subscribe
  // before they register the watcher that applies updates, so a synchronous one is lost.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => this.caListeners.has(listener) && listener(this.caUpdate));
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => this.identity && this.identityListeners.has(listener) && listener(this.identity));
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.unsubscribe?.();
  }
}
