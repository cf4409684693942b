// The control plane's connection to the Kubernetes API server: client-node's KubeConfig
// (in-cluster service account, or a kubeconfig file) for the server, its CA and the
// credentials, and plain JSON requests over the HTTPS agent KubeConfig builds. Watches go
// through client-node's Watch (informer.ts); everything else (lists, TokenReview, Lease,
// Secret, status) through `request` here, so every call carries the same TLS and token —
// the service account token is re-read from its file as the kubelet rotates it.
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';
import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { NodemeshError } from '../../common/errors.js';

/** Where the client finds its cluster. */
export interface KubeConnectOptions {
  /** a kubeconfig file; without it: in-cluster (the pod's service account), else $KUBECONFIG */
  kubeconfig?: string;
  /** per-request timeout for everything but watches (default 30 s) */
  requestTimeoutMs?: number;
}

/** An answer from the API server that is not 2xx: its HTTP status and Status reason. */
export class KubeApiError extends NodemeshError {
  constructor(
    readonly statusCode: number,
    readonly reason: string,
    message: string,
  ) {
    super('NM_ERR_KUBE', message);
    this.name = 'KubeApiError';
  }
}

/** The control plane's namespace (its Lease, CA Secrets and root ConfigMap live there) when the kubeconfig names none. */
export const CONTROL_NAMESPACE_DEFAULT = 'nodemesh-system';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** In-cluster first (as istiod), then the kubeconfig named by the flag or $KUBECONFIG. */
export function loadKubeConfig(opts: KubeConnectOptions = {}): { kc: KubeConfig; describe: string } {
  const kc = new KubeConfig();
  try {
    if (opts.kubeconfig) {
      kc.loadFromFile(opts.kubeconfig);
      return { kc, describe: `kubeconfig ${opts.kubeconfig} (${kc.getCurrentCluster()?.server ?? 'no server'})` };
    }
    if (process.env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN)) {
      kc.loadFromCluster();
      return { kc, describe: `in-cluster (${kc.getCurrentCluster()?.server})` };
    }
    if (process.env.KUBECONFIG) {
      kc.loadFromFile(process.env.KUBECONFIG);
      return { kc, describe: `kubeconfig ${process.env.KUBECONFIG} (${kc.getCurrentCluster()?.server ?? 'no server'})` };
    }
  } catch (err) {
    throw new NodemeshError('NM_ERR_KUBE', `cannot load the Kubernetes client configuration: ${(err as Error).message}`, { cause: err });
  }
  throw new NodemeshError('NM_ERR_KUBE', 'not running in a cluster (no KUBERNETES_SERVICE_HOST and service account token) and no kubeconfig: pass --kubeconfig FILE or set KUBECONFIG');
}

export class KubeClient {
  readonly server: string;
  private readonly timeoutMs: number;

  constructor(
    readonly kc: KubeConfig,
    opts: Pick<KubeConnectOptions, 'requestTimeoutMs'> = {},
  ) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new NodemeshError('NM_ERR_KUBE', 'the Kubernetes client configuration names no current cluster');
    this.server = cluster.server.replace(/\/+$/, '');
    this.timeoutMs = opts.requestTimeoutMs ?? 30_000;
  }

  /** The namespace of the current context (in-cluster: the pod's own), else `fallback`. */
  namespace(fallback: string): string {
    return this.kc.getContextObject(this.kc.getCurrentContext())?.namespace || fallback;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  /** Resolves undefined on 404 (absent object, or a resource the server does not serve). */
  async getOptional<T>(path: string): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', path);
    } catch (err) {
      if (err instanceof KubeApiError && err.statusCode === 404) return undefined;
      throw err;
    }
  }

  create<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  replace<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = new URL(this.server + path);
    const opts: RequestOptions = { method, headers: { accept: 'application/json' } };
    // the TLS material, the token (re-read from its file) and the agent, as client-node's own calls
    await this.kc.applyToHTTPSOptions(opts);
    const text = body === undefined ? undefined : JSON.stringify(body);
    if (text !== undefined) opts.headers = { ...opts.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) };
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    return new Promise<T>((resolve, reject) => {
      const req = send(url, { ...opts, timeout: this.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = raw ? JSON.parse(raw) : undefined;
          } catch {
            parsed = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve(parsed as T);
          const s = (parsed ?? {}) as { reason?: string; message?: string };
          reject(new KubeApiError(status, s.reason ?? '', `${method} ${path}: ${status} ${s.reason ?? ''}${s.message ? `: ${s.message}` : ''}`));
        });
      });
      req.on('timeout', () => req.destroy(new NodemeshError('NM_ERR_KUBE', `${method} ${path}: no answer within ${this.timeoutMs / 1000} s`)));
      req.on('error', (err) => reject(err instanceof NodemeshError ? err : new NodemeshError('NM_ERR_KUBE', `${method} ${path}: ${err.message}`, { cause: err })));
      req.end(text);
    });
  }
}

/** The REST path of a resource collection (or of one object / subresource). */
export function resourcePath(r: { group: string; version: string; plural: string }, namespace?: string, name?: string, sub?: string): string {
  let p = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  if (namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${r.plural}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (sub) p += `/${sub}`;
  return p;
}
