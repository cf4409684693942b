// How a node agent talks to the control plane: TLS, verifying the control plane's serving
// certificate, and presenting the node's credential (mTLS) so the control plane knows which
// node is calling. One ChannelCredentials for the discovery stream and the CA client.
//
// The roots it verifies the control plane against are the union of
//   - the root file it was given (--root-cert; re-read every few seconds: on Kubernetes a
//     ConfigMap the control plane keeps current, in the lab the CA dir's trust-bundle.pem), and
//   - the trust bundle of the latest snapshot,
// so during a root rotation an agent trusts the new root as soon as either tells it, and a
// control plane that switched its serving certificate to the new root stays reachable.
import { readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { controlError, parseRootCerts, readRootCertFile } from './control-roots.js';

/** files of a node credential directory (`nodemesh agent --node-credential DIR`) */
export const NODE_CREDENTIAL_FILES = { cert: 'cert.pem', key: 'key.pem' } as const;

type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

export interface ControlCredentialsOptions {
  /** PEM file of the root(s) the control plane's serving certificate chains to */
  rootCertFile: string;
  /** directory holding this node's credential: cert.pem and key.pem (the lab) */
  nodeCredentialDir?: string;
  /**
   * or: a projected ServiceAccount token file (audience `nodemesh`; the kubelet rotates it),
   * sent as `authorization: Bearer` on every call and re-read for each (Kubernetes)
   */
  tokenFile?: string;
  /** how often the files are re-read for changes (default 5000 ms) */
  refreshMs?: number;
}

export class ControlPlaneCredentials implements grpc.experimental.CertificateProvider {
  readonly credentials: grpc.ChannelCredentials;
  private fileRootsPem: string[];
  private bundle: string[] = [];
  private identity: { certificate: Buffer; privateKey: Buffer } | undefined;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly timer: NodeJS.Timeout;

  /** Reads the files now: a missing or unreadable one is an NM_ERR_CONTROL at start, naming it. */
  constructor(private readonly opts: ControlCredentialsOptions) {
    this.fileRootsPem = readRootCertFile(opts.rootCertFile);
    if (Boolean(opts.nodeCredentialDir) === Boolean(opts.tokenFile)) throw controlError('the agent authenticates to the control plane with one of --node-credential DIR (the lab) or --token-file FILE (a projected ServiceAccount token)');
    if (opts.tokenFile) {
      const tokenFile = opts.tokenFile;
      readToken(tokenFile); // a missing token is an error at start, naming the file
      this.identity = undefined;
      const perCall = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
        try {
          const md = new grpc.Metadata();
          md.set('authorization', `Bearer ${readToken(tokenFile)}`);
          callback(null, md);
        } catch (err) {
          callback(err as Error);
        }
      });
      this.credentials = grpc.credentials.combineChannelCredentials(grpc.experimental.createCertificateProviderChannelCredentials(this, null), perCall);
      this.timer = setInterval(() => void this.refresh(), opts.refreshMs ?? 5000);
      this.timer.unref();
      return;
    }
    try {
      this.identity = readNodeCredential(opts.nodeCredentialDir!);
    } catch (err) {
      throw controlError(
        `--node-credential ${opts.nodeCredentialDir}: ${(err as Error).message} (a directory holding ${NODE_CREDENTIAL_FILES.cert} and ${NODE_CREDENTIAL_FILES.key}, or one PEM file with both, like the kubelet's kubelet-client-current.pem)`,
        err,
      );
    }
    this.credentials = grpc.experimental.createCertificateProviderChannelCredentials(this, this);
    this.timer = setInterval(() => void this.refresh(), opts.refreshMs ?? 5000);
    this.timer.unref();
  }

  /** The roots trusted for the control plane now (file ∪ snapshot bundle), PEM. */
  roots(): string[] {
    return [...new Set([...this.fileRootsPem, ...this.bundle].map((r) => r.trimEnd() + '\n'))];
  }

  /** The roots of the --root-cert file. */
  fileRoots(): string[] {
    return [...this.fileRootsPem];
  }

  /** The trust bundle of the latest snapshot. */
  setTrustBundle(pems: readonly string[]): void {
    const before = this.roots().join('');
    this.bundle = [...pems];
    if (this.roots().join('') !== before) this.pushCa();
  }

  private pushCa(): void {
    const update = { caCertificate: Buffer.from(this.roots().join('')) };
    for (const l of this.caListeners) l(update);
  }

  private async refresh(): Promise<void> {
    try {
      const text = await readFile(this.opts.rootCertFile, 'utf8');
      const roots = parseRootCerts(this.opts.rootCertFile, text);
      if (roots.join('') !== this.fileRootsPem.join('')) {
        this.fileRootsPem = roots;
        this.pushCa();
      }
      if (!this.opts.nodeCredentialDir || !this.identity) return;
      const certificate = await readFile(path.join(this.opts.nodeCredentialDir, NODE_CREDENTIAL_FILES.cert));
      const privateKey = await readFile(path.join(this.opts.nodeCredentialDir, NODE_CREDENTIAL_FILES.key));
      if (!certificate.equals(this.identity.certificate) || !privateKey.equals(this.identity.privateKey)) {
        this.identity = { certificate, privateKey };
        for (const l of this.identityListeners) l(this.identity);
      }
    } catch {
      // a file being replaced, or gone for a moment: keep what was read last
    }
  }

  // first updates on a later tick, as grpc-js's own file watcher gives them
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => this.caListeners.has(listener) && listener({ caCertificate: Buffer.from(this.roots().join('')) }));
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => this.identityListeners.has(listener) && this.identity && listener(this.identity));
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  close(): void {
    clearInterval(this.timer);
  }
}

/** The token file's content, trimmed; an empty or unreadable file is an error naming it. */
function readToken(file: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw controlError(`--token-file ${file}: ${(err as Error).message}`, err);
  }
  if (!token) throw controlError(`--token-file ${file} is empty (a projected ServiceAccount token with audience nodemesh)`);
  return token;
}

/**
 * A node credential: a directory with cert.pem and key.pem (the lab's), or one PEM file
 * holding the certificate(s) and the key — the kubelet's own client certificate
 * (/var/lib/kubelet/pki/kubelet-client-current.pem, `O=system:nodes, CN=system:node:<node>`),
 * which is how an agent authenticates as its node on Kubernetes.
 */
export function readNodeCredential(p: string): { certificate: Buffer; privateKey: Buffer } {
  if (!statSync(p).isFile()) {
    return { certificate: readFileSync(path.join(p, NODE_CREDENTIAL_FILES.cert)), privateKey: readFileSync(path.join(p, NODE_CREDENTIAL_FILES.key)) };
  }
  const text = readFileSync(p, 'utf8');
  const blocks = text.match(/-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\n?/g) ?? [];
  const certs = blocks.filter((b) => b.startsWith('-----BEGIN CERTIFICATE-----'));
  const key = blocks.find((b) => /^-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(b));
  if (certs.length === 0 || !key) throw new Error('the file must hold a certificate and its private key (PEM)');
  return { certificate: Buffer.from(certs.join('')), privateKey: Buffer.from(key) };
}
