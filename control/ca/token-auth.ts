// Node authentication on Kubernetes without the kubelet's key, as istiod authenticates
// ztunnel: the agent sends its projected ServiceAccount token (`authorization: Bearer`,
// audience `nodemesh`, short-lived, rotated by the kubelet), and the control plane
//   1. asks the API server (TokenReview, audiences [nodemesh]) whether the token is valid
//      now and for that audience — an expired token, a token for another audience or a
//      forged one is refused there;
//   2. takes the token's user: one of the agent's ServiceAccounts
//      (`system:serviceaccount:<ns>:<name>`, istiod's CA_TRUSTED_NODE_ACCOUNTS) is a node;
//      any other ServiceAccount is a workload (the east-west gateway's pod, issue 13), which
//      the authorizer lets have its own identity and nothing else, as istiod signs a
//      workload's own identity for its token; any other user is refused;
//   3. takes the pod the token is bound to (`authentication.kubernetes.io/pod-name` and
//      `pod-uid` in the review's user.extra, which only projected tokens carry) and reads
//      that pod: its uid must match (a pod recreated under the same name is another pod)
//      and its spec.nodeName is the node the caller is.
// The node then goes through the same rule as the lab's node certificates
// (SnapshotNodeAuthorizer): certificates only for identities with a pod on that node (for a
// workload, its own). A workload's pod must run as the token's ServiceAccount.
// A positive answer is cached for `cacheMs` (default 10 s; a TokenReview does not say when
// the token expires, so this is how long an expired or revoked token may still pass): an
// agent's calls do not each cost a TokenReview and a pod GET.
import { createHash } from 'node:crypto';
import type { KubeClient } from '../kube/kube-client.js';
import { Refusal, type Caller, type CallerInfo, type NodeAuthenticator } from './node-auth.js';

/** The audience the agent's projected token is minted for (the DaemonSet's volume says so). */
export const NODEMESH_TOKEN_AUDIENCE = 'nodemesh';

export interface TokenReviewAuthenticatorOptions {
  client: KubeClient;
  /** `namespace/name` of the ServiceAccounts agents run as (default nodemesh-system/nodemesh-agent) */
  agentServiceAccounts?: string[];
  audience?: string;
  cacheMs?: number;
  now?: () => number;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; extra?: Record<string, string[]> };
}

export class TokenReviewAuthenticator implements NodeAuthenticator {
  readonly kind = 'service-account-token';
  private readonly accounts: Set<string>;
  private readonly audience: string;
  private readonly cacheMs: number;
  private readonly now: () => number;
  private readonly cache = new Map<string, { caller: Caller; until: number }>();

  constructor(private readonly opts: TokenReviewAuthenticatorOptions) {
    this.accounts = new Set((opts.agentServiceAccounts ?? ['nodemesh-system/nodemesh-agent']).map((a) => `system:serviceaccount:${a.replace('/', ':')}`));
    this.audience = opts.audience ?? NODEMESH_TOKEN_AUDIENCE;
    this.cacheMs = opts.cacheMs ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  async authenticate(call: CallerInfo): Promise<Caller> {
    const header = call.metadata.get('authorization')[0];
    const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (!token) throw new Refusal('unauthenticated', `caller ${call.getPeer()} presented no token: start the agent with --token-file (its projected ServiceAccount token, audience ${this.audience})`);
    const key = createHash('sha256').update(token).digest('hex');
    const hit = this.cache.get(key);
    if (hit && hit.until > this.now()) return hit.caller;
    this.cache.delete(key);

    let status: TokenReviewStatus;
    try {
      const review = await this.opts.client.create<{ status?: TokenReviewStatus }>('/apis/authentication.k8s.io/v1/tokenreviews', {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, audiences: [this.audience] },
      });
      status = review.status ?? {};
    } catch (err) {
      throw new Refusal('unavailable', `the token of ${call.getPeer()} cannot be reviewed now (the API server: ${(err as Error).message}); retry shortly`);
    }
    if (!status.authenticated) throw new Refusal('unauthenticated', `caller ${call.getPeer()}: its token is refused by the API server (${status.error || 'not authenticated'})`);
    if (!(status.audiences ?? []).includes(this.audience)) throw new Refusal('unauthenticated', `caller ${call.getPeer()}: its token is not for audience ${this.audience}`);
    const user = status.user?.username ?? '';
    const account = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(user);
    if (!account) {
      throw new Refusal('unauthenticated', `caller ${call.getPeer()}: ${user || 'an unnamed user'} is not a ServiceAccount (a node agent's, ${[...this.accounts].join(', ')}, or a workload's for its own identity)`);
    }
    const isAgent = this.accounts.has(user);
    const podName = status.user?.extra?.['authentication.kubernetes.io/pod-name']?.[0];
    const podUid = status.user?.extra?.['authentication.kubernetes.io/pod-uid']?.[0];
    if (!podName || !podUid) throw new Refusal('unauthenticated', `caller ${call.getPeer()}: its token is bound to no pod (a projected token is; a legacy Secret token is not accepted)`);
    const namespace = user.split(':')[2]!;
    let pod: { metadata?: { uid?: string }; spec?: { nodeName?: string; serviceAccountName?: string } } | undefined;
    try {
      pod = await this.opts.client.getOptional(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(podName)}`);
    } catch (err) {
      throw new Refusal('unavailable', `the pod ${namespace}/${podName} of ${call.getPeer()} cannot be read now (${(err as Error).message}); retry shortly`);
    }
    if (!pod || pod.metadata?.uid !== podUid) throw new Refusal('unauthenticated', `caller ${call.getPeer()}: the pod its token is bound to (${namespace}/${podName}, uid ${podUid}) no longer exists`);
    const node = pod.spec?.nodeName ?? '';
    if (!node) throw new Refusal('unauthenticated', `caller ${call.getPeer()}: its pod ${namespace}/${podName} is not scheduled on a node`);
    const serviceAccount = account[2]!;
    if (!isAgent && (pod.spec?.serviceAccountName ?? 'default') !== serviceAccount) {
      throw new Refusal('unauthenticated', `caller ${call.getPeer()}: its token is for ServiceAccount ${namespace}/${serviceAccount} but its pod ${namespace}/${podName} runs as ${pod.spec?.serviceAccountName ?? 'default'}`);
    }
    const caller: Caller = isAgent ? { node } : { node, workload: { namespace, serviceAccount, pod: podName } };
    this.cache.set(key, { caller, until: this.now() + this.cacheMs });
    if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value!);
    return caller;
  }
}

/**
 * The lab's node certificate when the caller presents one, else the token: a control plane
 * on Kubernetes can serve both during a migration.
 */
export class EitherAuthenticator implements NodeAuthenticator {
  readonly kind = 'node-certificate-or-token';
  constructor(private readonly certificate: NodeAuthenticator | undefined, private readonly token: NodeAuthenticator | undefined) {}

  authenticate(call: CallerInfo): Caller | Promise<Caller> {
    if (this.certificate && (call.getAuthContext().sslPeerCertificate?.raw || !this.token)) return this.certificate.authenticate(call);
    return this.token!.authenticate(call);
  }
}
