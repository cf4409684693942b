// Who may use the agent's admin port (15020), and for what.
//
// The admin port shows what no pod should see: /debug/state (the node's enrolled pods,
// their netns paths, certificate serials) and /debug/tap (every connection of every meshed
// pod of the node, live). It listens on the node's address, where every pod can reach it,
// because the kubelet's readiness probe and Prometheus need an address they can route to.
// So access is decided per request, as Istio and Linkerd users would expect from their node
// proxies (ztunnel keeps its admin on localhost; Linkerd serves tap only to an authenticated
// client; node-exporter-style daemons put a token in front of /metrics):
//
// - the node itself: a peer address that is loopback or one of the node's own addresses
//   (a packet from outside with a local source address is dropped by the kernel as a
//   martian, and a TCP handshake cannot complete with a spoofed one) may use everything.
//   That is the kubelet's probe, `kubectl port-forward` (a loopback listener is added for it),
//   and an operator on the node. The node proxy never dials these ports for a pod
//   (proxy/passthrough-guard.ts), since it would do so from the node's address;
// - trusted networks (`--admin-trusted-networks CIDR,…`): clients treated like the node.
//   Empty by default; the lab trusts its host, which plays the operator's machine;
// - a bearer token (`Authorization: Bearer …`): the `--admin-token-file` token may use
//   everything, the `--metrics-token-file` one only /metrics and /healthz/ready. That is the
//   documented path for Prometheus: a scrape job with `authorization: {credentials_file: …}`
//   holding the metrics token, which cannot read /debug. Token files are re-read as they
//   change (a rotated Secret);
// - anyone else: 401 (no or a wrong token) or 403 (a metrics token asking for /debug),
//   counted in nodemesh_agent_admin_refused_total{reason}.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type http from 'node:http';
import { unmapIpv4 } from '../../common/ip.js';
import { NodemeshError } from '../../common/errors.js';

export type AdminScope = 'metrics' | 'debug';

/** What a path needs: /metrics, readiness and liveness are the metrics scope, everything else debug. */
export function scopeOf(pathname: string): AdminScope {
  return pathname === '/metrics' || pathname === '/stats/prometheus' || pathname === '/healthz/ready' || pathname === '/healthz/live' ? 'metrics' : 'debug';
}

export interface AdminAccessOptions {
  /** whether a peer address is the node itself (default: loopback or an interface address) */
  isNode: (ip: string) => boolean;
  /** CIDRs whose clients are treated like the node */
  trustedNetworks?: string[];
  /** a file holding the token that may use everything */
  adminTokenFile?: string;
  /** a file holding the token that may read /metrics and /healthz/ready */
  metricsTokenFile?: string;
  /**
   * scopes served to any peer: the east-west gateway's metrics scope, which shows no pod's
   * data and which the kubelet probes from an address that is not the gateway pod's own
   */
  openScopes?: AdminScope[];
}

export type AccessDecision =
  | { ok: true; who: 'node' | 'trusted' | 'admin-token' | 'metrics-token' | 'open' }
  | { ok: false; status: 401 | 403; reason: 'no_credential' | 'bad_token' | 'scope'; message: string };

/** A token file, re-read when its mtime or size changes; compared in constant time. */
class TokenFile {
  private digest: Buffer | undefined;
  private seen = '';

  constructor(readonly file: string) {}

  async matches(token: string): Promise<boolean> {
    await this.refresh();
    if (!this.digest) return false;
    return timingSafeEqual(this.digest, createHash('sha256').update(token).digest());
  }

  /** Reads the file now; throws NM_ERR_ADMIN naming it when it cannot be used (at start). */
  async load(): Promise<void> {
    try {
      await this.refresh(true);
    } catch (err) {
      if (err instanceof NodemeshError) throw err;
      throw new NodemeshError('NM_ERR_ADMIN', `admin token file ${this.file}: ${(err as Error).message}`, { cause: err });
    }
    if (!this.digest) throw new NodemeshError('NM_ERR_ADMIN', `admin token file ${this.file}: empty or unreadable; put the token on one line (e.g. from a Kubernetes Secret)`);
  }

  private async refresh(strict = false): Promise<void> {
    try {
      const st = await stat(this.file);
      const sig = `${st.mtimeMs}:${st.size}:${st.ino}`;
      if (sig === this.seen) return;
      const token = (await readFile(this.file, 'utf8')).trim();
      this.seen = sig;
      // a token shorter than 16 characters is no credential: refuse to use it at all
      this.digest = token.length >= 16 ? createHash('sha256').update(token).digest() : undefined;
      if (strict && token.length > 0 && token.length < 16) throw new NodemeshError('NM_ERR_ADMIN', `admin token file ${this.file}: the token has ${token.length} characters; use at least 16 (e.g. \`head -c 32 /dev/urandom | base64\`)`);
    } catch (err) {
      if (strict) throw err;
      // being replaced, or gone for a moment: keep the last token read
    }
  }
}

export class AdminAccess {
  private readonly trusted = new BlockList();
  private readonly hasTrusted: boolean;
  private readonly adminToken: TokenFile | undefined;
  private readonly metricsToken: TokenFile | undefined;

  constructor(private readonly opts: AdminAccessOptions) {
    for (const cidr of opts.trustedNetworks ?? []) addCidr(this.trusted, cidr);
    this.hasTrusted = (opts.trustedNetworks ?? []).length > 0;
    this.adminToken = opts.adminTokenFile ? new TokenFile(opts.adminTokenFile) : undefined;
    this.metricsToken = opts.metricsTokenFile ? new TokenFile(opts.metricsTokenFile) : undefined;
  }

  /** Checks the token files at start, so that a bad one stops the agent with a clear error. */
  async load(): Promise<void> {
    await this.adminToken?.load();
    await this.metricsToken?.load();
  }

  /** Whether a connection from `ip` may ever be served without a token (node or trusted network). */
  trustedPeer(ip: string): 'node' | 'trusted' | undefined {
    const a = unmapIpv4(ip);
    if (this.opts.isNode(a)) return 'node';
    if (this.hasTrusted && (isIPv4(a) ? this.trusted.check(a, 'ipv4') : isIPv6(a) && this.trusted.check(a, 'ipv6'))) return 'trusted';
    return undefined;
  }

  /** Whether a token could be presented at all (else a peer that is not trusted is refused at connect). */
  get acceptsTokens(): boolean {
    return this.adminToken !== undefined || this.metricsToken !== undefined;
  }

  async decide(req: http.IncomingMessage, scope: AdminScope): Promise<AccessDecision> {
    const peer = this.trustedPeer(req.socket.remoteAddress ?? '');
    if (peer) return { ok: true, who: peer };
    if (this.opts.openScopes?.includes(scope)) return { ok: true, who: 'open' };
    const auth = req.headers.authorization;
    const token = auth && /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1];
    const how = `only the node itself may use the admin port${this.acceptsTokens ? ', or a client with a bearer token (Authorization: Bearer …)' : ''}; see \`nodemesh agent --admin-token-file\` / \`--metrics-token-file\``;
    if (!token) return { ok: false, status: 401, reason: 'no_credential', message: `unauthorized: ${how}` };
    if (await this.adminToken?.matches(token)) return { ok: true, who: 'admin-token' };
    if (await this.metricsToken?.matches(token)) {
      if (scope === 'metrics') return { ok: true, who: 'metrics-token' };
      return { ok: false, status: 403, reason: 'scope', message: 'forbidden: the metrics token reads /metrics and /healthz/ready only; /debug needs the node or the admin token' };
    }
    return { ok: false, status: 401, reason: 'bad_token', message: `unauthorized: the token is not one this agent accepts; ${how}` };
  }
}

function addCidr(list: BlockList, cidr: string): void {
  const [ip, len] = cidr.trim().split('/');
  const family = isIPv4(ip ?? '') ? 'ipv4' : isIPv6(ip ?? '') ? 'ipv6' : undefined;
  const prefix = len === undefined ? (family === 'ipv4' ? 32 : 128) : Number(len);
  if (!family || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 'ipv4' ? 32 : 128)) {
    throw new NodemeshError('NM_ERR_ADMIN', `--admin-trusted-networks: ${JSON.stringify(cidr)} is not a CIDR such as 10.0.0.0/8 or 172.31.240.1/32`);
  }
  list.addSubnet(ip!, prefix, family);
}
