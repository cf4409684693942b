// Who is calling, and what may it have. The CA's threat model is Istio's node authorizer
// ("validates that a node proxy which requests certificates for workloads on its own node is
// request valid identities which run on that node (rather than arbitrary ones)",
// istio/security/pkg/server/ca/node_auth.go): a compromised node can obtain the identities
// of the pods scheduled on it, and no others.
//
// - NodeAuthenticator: the node behind a gRPC call. The lab's is NodeCertificateAuthenticator
//   (mTLS with a node credential, node-credentials.ts); a Kubernetes one (projected
//   service-account token + TokenReview, node from the token's pod binding) would implement
//   the same interface.
// - SnapshotNodeAuthorizer: may that node have that identity? Yes iff the control plane's
//   current snapshot has a workload with that SPIFFE ID and that node.
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { NodemeshError } from '../../common/errors.js';
import { spiffeId as ownSpiffeId, type Snapshot } from '../api/snapshot.js';
import { parseWorkloadSpiffeId, uriSans } from '../api/x509-svid.js';
import { NODE_GROUP, NODE_USER_PREFIX } from './node-credentials.js';

export type RefusalReason = 'unauthenticated' | 'permission_denied' | 'invalid_argument' | 'unavailable' | 'internal';

const STATUS: Record<RefusalReason, grpc.status> = {
  unauthenticated: grpc.status.UNAUTHENTICATED,
  permission_denied: grpc.status.PERMISSION_DENIED,
  invalid_argument: grpc.status.INVALID_ARGUMENT,
  unavailable: grpc.status.UNAVAILABLE,
  internal: grpc.status.INTERNAL,
};

/** A refused request: the gRPC status it maps to and the metric label. */
export class Refusal extends NodemeshError {
  readonly reason: RefusalReason;
  readonly grpcCode: grpc.status;
  constructor(reason: RefusalReason, message: string) {
    super('NM_ERR_IDENTITY', message);
    this.name = 'Refusal';
    this.reason = reason;
    this.grpcCode = STATUS[reason];
  }
}

type AuthContext = ReturnType<grpc.ServerUnaryCall<unknown, unknown>['getAuthContext']>;

/** What an authenticator may look at: the TLS peer, the metadata, the address. */
export interface CallerInfo {
  getAuthContext(): AuthContext;
  getPeer(): string;
  metadata: grpc.Metadata;
}

/**
 * Who a caller proved it is: a node (its agent, by a node credential or the agents'
 * ServiceAccount token), or a workload by its own ServiceAccount token (the east-west
 * gateway's pod, issue 13), which may have its own identity only. `node` is the node the
 * caller runs on either way (the token's pod's spec.nodeName), the one it may watch as.
 */
export interface Caller {
  node: string;
  /** set for a workload's own token: its ServiceAccount and the pod the token is bound to */
  workload?: { namespace: string; serviceAccount: string; pod: string };
}

export interface NodeAuthenticator {
  /** e.g. `node-certificate` (for logs) */
  readonly kind: string;
  /** Who the caller proved it is; throws (or rejects with) a Refusal (unauthenticated) saying why not. */
  authenticate(call: CallerInfo): Caller | Promise<Caller>;
}

function subjectFields(x: X509Certificate): { cn: string[]; o: string[] } {
  const cn: string[] = [];
  const o: string[] = [];
  for (const line of x.subject.split('\n')) {
    const i = line.indexOf('=');
    const k = line.slice(0, i);
    if (k === 'CN') cn.push(line.slice(i + 1));
    else if (k === 'O') o.push(line.slice(i + 1));
  }
  return { cn, o };
}

/**
 * The lab's node authentication: the TLS client certificate, which the server verified
 * against the node CA (the only CA it asks client certificates of), must say
 * O=system:nodes, CN=system:node:<node>, and carry no URI SAN (it is not a workload SVID).
 * grpc-js gives the peer certificate only when the TLS layer authorized it.
 */
export class NodeCertificateAuthenticator implements NodeAuthenticator {
  readonly kind = 'node-certificate';
  private readonly cas: X509Certificate[];

  constructor(nodeCaPems: readonly string[]) {
    this.cas = nodeCaPems.map((p) => new X509Certificate(p));
    if (this.cas.length === 0) throw new NodemeshError('NM_ERR_CA', 'node authentication needs the node CA certificate (--node-ca)');
  }

  authenticate(call: CallerInfo): Caller {
    const peer = call.getAuthContext().sslPeerCertificate;
    if (!peer?.raw) {
      throw new Refusal(
        'unauthenticated',
        `caller ${call.getPeer()} presented no valid node credential (none, expired, or not issued by the node CA): start the agent with --node-credential DIR holding the credential issued for its node`,
      );
    }
    const x = new X509Certificate(peer.raw);
    // the TLS layer checked this already; checked again so no configuration slip (another CA in the server's list) lets an SVID through
    if (!this.cas.some((ca) => x.checkIssued(ca) && x.verify(ca.publicKey))) {
      throw new Refusal('unauthenticated', `caller ${call.getPeer()}: its client certificate is not issued by the node CA`);
    }
    const now = Date.now();
    if (Date.parse(x.validFrom) > now || Date.parse(x.validTo) < now) {
      throw new Refusal('unauthenticated', `caller ${call.getPeer()}: its node credential is not valid now (valid ${x.validFrom} – ${x.validTo})`);
    }
    if (uriSans(x.raw).length > 0) throw new Refusal('unauthenticated', `caller ${call.getPeer()}: a certificate with a URI SAN is a workload SVID, not a node credential`);
    const { cn, o } = subjectFields(x);
    const user = cn.length === 1 ? cn[0]! : '';
    if (!o.includes(NODE_GROUP) || !user.startsWith(NODE_USER_PREFIX) || user.length === NODE_USER_PREFIX.length) {
      throw new Refusal('unauthenticated', `caller ${call.getPeer()}: its certificate (${x.subject.replace(/\n/g, ', ')}) is not a node credential (O=${NODE_GROUP}, CN=${NODE_USER_PREFIX}<node>)`);
    }
    return { node: user.slice(NODE_USER_PREFIX.length) };
  }
}

/**
 * "We want to find out if there is any pod running with the requested identity on the
 * callers node" (istiod's node authorizer): a workload in the current snapshot with that
 * SPIFFE ID and that node. The snapshot lists every pod with an IP that has not finished,
 * so a pod that was deleted or moved loses its node's right at the next snapshot.
 */
export class SnapshotNodeAuthorizer {
  constructor(
    private readonly snapshot: () => Snapshot | undefined,
    private readonly trustDomain: string,
  ) {}

  /**
   * Returns nothing when allowed; throws a Refusal naming node, identity and why. A workload's
   * own token may have exactly its own identity ("nothing else"), and only while its pod is on
   * its node in the snapshot, as a node's pods are.
   */
  authorize(caller: Caller | string, spiffeId: string): void {
    const { node, workload } = typeof caller === 'string' ? { node: caller, workload: undefined } : caller;
    try {
      parseWorkloadSpiffeId(spiffeId, this.trustDomain);
    } catch (err) {
      throw new Refusal('invalid_argument', (err as Error).message);
    }
    if (workload) {
      const own = ownSpiffeId(this.trustDomain, workload.namespace, workload.serviceAccount);
      if (spiffeId !== own) {
        throw new Refusal('permission_denied', `the token of ServiceAccount ${workload.namespace}/${workload.serviceAccount} (pod ${workload.pod}) may obtain only its own identity ${own}, not ${spiffeId}`);
      }
    }
    const snap = this.snapshot();
    if (!snap) throw new Refusal('unavailable', 'the control plane has not compiled its first snapshot yet, so it cannot tell which pods run where: retry shortly');
    if (snap.workloads.some((w) => w.node === node && w.spiffeId === spiffeId)) return;
    const elsewhere = [...new Set(snap.workloads.filter((w) => w.spiffeId === spiffeId).map((w) => w.node))];
    const why = elsewhere.length
      ? `its pods run on ${elsewhere.slice(0, 5).join(', ')}${elsewhere.length > 5 ? ', …' : ''}, not on ${node}`
      : 'no pod has that identity';
    throw new Refusal('permission_denied', `node ${node} may not obtain a certificate for ${spiffeId}: no pod with that identity is scheduled on node ${node} (${why}; snapshot v${snap.version})`);
  }
}
