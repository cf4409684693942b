// The agent's side of nodemesh.v1.Discovery/Watch: one long-lived server stream, re-opened
// whenever it ends or fails, with exponential backoff and full jitter (delay = random in
// [0, min(max, initial·2^attempt)]), so that a restarted control plane is not hit by every
// node at the same instant. The backoff resets once a snapshot arrives. The last snapshot
// stays available (and in use by the agent) while disconnected.
//
// Versions restart at 1 when the control plane restarts, so a snapshot is delivered
// whenever it differs from the last one (version or generatedAt), not only when newer.
//
// Every snapshot is checked as it arrives (snapshot-check.ts). One that fails is refused:
// reported and counted, never delivered; the last good one stays, and the stream goes on
// (the next version may be fine).
import * as grpc from '@grpc/grpc-js';
import { fullJitterBackoff } from '../../common/backoff.js';
import { NodemeshError } from '../../common/errors.js';
import type { DiscoveryClient } from './generated/nodemesh/v1/Discovery.js';
import { discoveryService, type Snapshot } from './snapshot.js';
import { InvalidSnapshotError, checkSnapshot } from './snapshot-check.js';

export interface WatchSnapshotsOptions {
  /** control plane `host:port` */
  address: string;
  /** the Kubernetes node name this agent runs on */
  node: string;
  onSnapshot: (snapshot: Snapshot) => void;
  /** every failed or ended stream and every refused snapshot (NM_ERR_CONTROL); the watch keeps going */
  onError?: (err: NodemeshError) => void;
  /** every refused snapshot (also reported to onError), e.g. to count in a metric; `err.field` names the defect */
  onRejected?: (err: InvalidSnapshotError) => void;
  /** first retry delay bound (default 250 ms) */
  initialBackoffMs?: number;
  /** largest retry delay bound (default 15 s) */
  maxBackoffMs?: number;
  /** default: insecure (tests); the agent passes ControlPlaneCredentials' TLS (control-credentials.ts) */
  credentials?: grpc.ChannelCredentials;
  /** jitter source in [0, 1) (default Math.random), injectable for tests */
  random?: () => number;
}

export interface SnapshotWatch {
  /** the last snapshot received (kept across reconnects) */
  snapshot(): Snapshot | undefined;
  /** a stream is open and has delivered at least one snapshot since it opened */
  connected(): boolean;
  /** snapshots refused by the check since the watch began */
  rejected(): number;
  close(): void;
}

export function watchSnapshots(opts: WatchSnapshotsOptions): SnapshotWatch {
  const initial = opts.initialBackoffMs ?? 250;
  const max = opts.maxBackoffMs ?? 15_000;
  const random = opts.random ?? Math.random;
  const Client = discoveryService();
  const client = new Client(opts.address, opts.credentials ?? grpc.credentials.createInsecure(), {
    // notice a control plane that vanished without closing the connection
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    // grpc-js also backs off reconnecting the channel itself (up to 120 s by default), and
    // a Watch started meanwhile fails at once: keep its backoff within ours
    'grpc.initial_reconnect_backoff_ms': initial,
    'grpc.max_reconnect_backoff_ms': max,
  }) as unknown as DiscoveryClient;

  let last: Snapshot | undefined;
  let call: grpc.ClientReadableStream<unknown> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let attempt = 0;
  let live = false;
  let closed = false;
  let rejected = 0;

  const report = (message: string, cause?: unknown) => {
    if (!opts.onError) return;
    try {
      opts.onError(new NodemeshError('NM_ERR_CONTROL', message, { cause }));
    } catch {
      // a failing error handler must not stop the watch
    }
  };

  const refuse = (msg: unknown, err: unknown) => {
    rejected++;
    const v = (msg as { version?: unknown } | null)?.version;
    const version = typeof v === 'string' || typeof v === 'number' ? `version ${v}` : 'without a version';
    const why = err instanceof InvalidSnapshotError ? `field ${err.field}: ${err.problem}` : (err as Error).message;
    report(
      `control plane ${opts.address}: snapshot ${version} refused, ${why}; keeping snapshot version ${last?.version ?? 'none'} until one passes (the control plane sent what this agent cannot use: a bug, or a release this agent does not match)`,
      err,
    );
    if (err instanceof InvalidSnapshotError && opts.onRejected) {
      try {
        opts.onRejected(err);
      } catch {
        // as for onError
      }
    }
  };

  const retry = (why: string, cause?: unknown) => {
    if (closed) return;
    const delay = Math.round(fullJitterBackoff({ baseMs: initial, maxMs: max }, attempt, random));
    attempt++;
    report(`control plane ${opts.address}: ${why}; retrying in ${delay} ms (keeping snapshot version ${last?.version ?? 'none'}); check that the control plane runs and port ${opts.address.split(':').pop()} is reachable from this node`, cause);
    timer = setTimeout(open, delay);
    timer.unref();
  };

  function open(): void {
    timer = undefined;
    if (closed) return;
    const stream = client.watch({ node: opts.node, knownVersion: String(last?.version ?? 0) });
    call = stream;
    let done = false;
    const finish = (why: string, cause?: unknown) => {
      if (done) return;
      done = true;
      live = false;
      if (call === stream) call = undefined;
      retry(why, cause);
    };
    stream.on('data', (msg: unknown) => {
      let snap: Snapshot;
      try {
        snap = checkSnapshot(msg);
      } catch (err) {
        refuse(msg, err);
        return;
      }
      live = true;
      attempt = 0;
      if (last && last.version === snap.version && last.generatedAt === snap.generatedAt) return;
      last = snap;
      try {
        opts.onSnapshot(snap);
      } catch (err) {
        report(`onSnapshot failed for version ${snap.version}: ${(err as Error).message}`, err);
      }
    });
    stream.on('error', (err: grpc.ServiceError) => finish(`stream failed (${grpc.status[err.code] ?? err.code}: ${err.details || err.message})`, err));
    stream.on('end', () => finish('stream ended by the control plane'));
    stream.on('status', (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) finish('stream ended by the control plane');
    });
  }

  open();
  return {
    snapshot: () => last,
    connected: () => live,
    rejected: () => rejected,
    close: () => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      call?.cancel();
      client.close();
    },
  };
}
