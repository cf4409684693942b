// What the agent (the primary) and its proxy workers say to each other over the IPC channel
// of each worker (Node's, with `serialization: 'advanced'`: structured clones, so
// certificates keep their Dates and snapshots cross without a JSON round trip). The
// outbound and inbound capture listeners do not travel here: a worker inherits them at
// spawn, at fixed positions of its stdio (WORKER_FDS). HBONE connections do, one by one: the
// primary accepts them and hands each to a worker with the message (worker-pool.ts).
import type { Snapshot } from '../../control/api/snapshot.js';
import type { WorkloadCertificate } from '../identity/identity.js';
import type { ConnectionEvent, RequestEvent } from '../telemetry/tap.js';
import type { ServingConfig, ServingDescriptors } from './serving.js';

/** Where a worker finds the listening sockets: the stdio positions after the IPC channel (3). */
export const WORKER_FDS: Omit<ServingDescriptors, 'hbone'> = { outbound: 4, inbound: 5 };

/** A worker's identities: the certificates the primary holds for this node's pods, and the roots. */
export interface IdentityUpdate {
  certificates: WorkloadCertificate[];
  trustBundle: string[];
}

export type Question = 'metrics' | 'open' | 'debug';

/** What a tap watches: connections (`nodemesh tap`) or requests (`/debug/tap?requests`). */
export type TapKind = 'connection' | 'request';

export type ToWorker =
  | {
      op: 'start';
      index: number;
      config: ServingConfig;
      /** identities on: HBONE serves and dials (else meshed destinations are reached in plaintext) */
      hbone: boolean;
      /** the passthrough guard's view of the agent (proxy/passthrough-guard.ts) */
      guard: { agentPorts: number[]; control: string };
      snapshot: Snapshot | undefined;
      identities: IdentityUpdate | undefined;
    }
  | { op: 'snapshot'; snapshot: Snapshot }
  | { op: 'identities'; identities: IdentityUpdate }
  | { op: 'certificate'; id: number; certificate?: WorkloadCertificate; error?: string }
  | { op: 'ask'; id: number; what: Question }
  | { op: 'tap'; kind: TapKind; on: boolean }
  | { op: 'stop-accepting' }
  /** sent with an HBONE connection's socket, accepted by the primary: serve it */
  | { op: 'hbone-connection' }
  | { op: 'close' };

export type FromWorker =
  | { op: 'listening' }
  | { op: 'certificate'; id: number; spiffeId: string }
  | { op: 'answer'; id: number; value: unknown }
  | { op: 'tap'; kind: 'connection'; event: ConnectionEvent }
  | { op: 'tap'; kind: 'request'; event: RequestEvent }
  /** an HBONE connection the primary handed over has closed */
  | { op: 'hbone-closed' }
  | { op: 'closed' };
