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
//
// Liveness (control-target.ts): keepalive PINGs notice a frozen or partitioned control plane
// within seconds, and the stream is re-opened with backoff and jitter, over whichever
// replica the channel reaches. A connection attempt that hangs (the kernel of a frozen
// control plane still completes the TCP handshake, and the TLS one then waits forever; a
// partition waits for SYN retries, minutes) is given up after connectTimeoutMs and the
// channel replaced, since grpc-js has no connect timeout of its own.
//
// Deltas (snapshot-delta.ts): the Watch asks for them; after the stream's first snapshot a
// version may come as what changed since the one before, applied to what the stream last
// carried. A delta whose base is not held (a bug, a missed message) re-opens the stream,
// which starts with a whole snapshot.
//
// Resume: a stream re-opened to a restarted control plane or to another replica starts
// with a snapshot whose version and generatedAt differ from the one held, but whose content
// is often the same. It is compared by content, and when equal it is not delivered again:
// the agent's state, pools and certificates carry on untouched instead of being rebuilt.
import * as grpc from '@grpc/grpc-js';
import { fullJitterBackoff } from '../../common/backoff.js';
import { NodemeshError } from '../../common/errors.js';
import type { DiscoveryClient } from './generated/nodemesh/v1/Discovery.js';
import { discoveryService, type Snapshot } from './snapshot.js';
import { InvalidSnapshotError, checkSnapshot, checkSnapshotDelta, isDeltaMessage } from './snapshot-check.js';
import { applyDelta, DeltaMismatch, sameContent } from './snapshot-delta.js';
import { controlTarget } from './control-target.js';

export interface WatchSnapshotsOptions {
  /** control plane `host:port`, or several replicas' IP `host:port` separated by commas (control-target.ts) */
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
  /** HTTP/2 keepalive PING interval and answer timeout (default control-target.ts's 4 s + 4 s) */
  keepaliveMs?: number;
  keepaliveTimeoutMs?: number;
  /** a stream whose channel is still not connected after this long is given up, the channel replaced (default 10 s) */
  connectTimeoutMs?: number;
  /** the stream came up (a first snapshot on it) or went down; called on each change */
  onConnected?: (connected: boolean) => void;
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
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  const Client = discoveryService();
  const target = controlTarget(opts.address, {
    ...(opts.keepaliveMs !== undefined ? { keepaliveMs: opts.keepaliveMs } : {}),
    ...(opts.keepaliveTimeoutMs !== undefined ? { keepaliveTimeoutMs: opts.keepaliveTimeoutMs } : {}),
    // grpc-js also backs off reconnecting the channel itself (up to 120 s by default), and
    // a Watch started meanwhile fails at once: keep its backoff within ours
    reconnectBackoffMs: { initial, max },
  });
  // a channel of its own (not grpc-js's shared subchannel pool), so that replacing it after
  // a hung connection attempt really starts a new connection
  const newClient = () =>
    new Client(target.target, opts.credentials ?? grpc.credentials.createInsecure(), {
      ...target.channelOptions,
      'grpc.use_local_subchannel_pool': 1,
    }) as unknown as DiscoveryClient;
  let client = newClient();
  let replaceChannel = false;

  let last: Snapshot | undefined;
  let call: grpc.ClientReadableStream<unknown> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let attempt = 0;
  let live = false;
  let closed = false;
  let rejected = 0;
  const setLive = (v: boolean) => {
    if (live === v) return;
    live = v;
    try {
      opts.onConnected?.(v);
    } catch {
      // as for onError
    }
  };

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
    report(`control plane ${opts.address}: ${why}; retrying in ${delay} ms (keeping snapshot version ${last?.version ?? 'none'}); check that the control plane runs and port ${target.addresses[0]!.split(':').pop()} is reachable from this node`, cause);
    timer = setTimeout(open, delay);
    timer.unref();
  };

  function open(): void {
    timer = undefined;
    if (closed) return;
    if (replaceChannel) {
      replaceChannel = false;
      client.close();
      client = newClient();
    }
    const stream = client.watch({ node: opts.node, knownVersion: String(last?.version ?? 0), deltas: true });
    call = stream;
    let done = false;
    let first = true;
    // the last snapshot this stream carried (checked; whole, or built from a delta): the base
    // of its next delta. Not always `last`: a resumed stream's first snapshot with the same
    // content is not delivered, but the control plane's deltas then start from it.
    let streamBase: Snapshot | undefined;
    // the channel still not connected after connectTimeoutMs: a hung connection attempt (a
    // connected channel without a snapshot yet is a control plane still reading its files)
    const connectTimer = setTimeout(() => {
      if (done || !first) return;
      const state = client.getChannel().getConnectivityState(false);
      if (state === grpc.connectivityState.READY) return;
      replaceChannel = true;
      finish(`no connection within ${connectTimeoutMs} ms (channel ${grpc.connectivityState[state]}: the control plane is frozen, overloaded or unreachable)`);
      stream.cancel();
    }, connectTimeoutMs);
    connectTimer.unref();
    const finish = (why: string, cause?: unknown) => {
      if (done) return;
      done = true;
      clearTimeout(connectTimer);
      setLive(false);
      if (call === stream) call = undefined;
      retry(why, cause);
    };
    stream.on('data', (msg: unknown) => {
      if (done) return;
      let snap: Snapshot;
      try {
        if (!isDeltaMessage(msg)) snap = checkSnapshot(msg);
        else if (!streamBase) throw new DeltaMismatch('a delta came first on the stream, with no snapshot to apply it to');
        else snap = applyDelta(streamBase, checkSnapshotDelta(msg));
      } catch (err) {
        if (err instanceof DeltaMismatch) {
          // this agent misses the delta's base: a new stream starts with a whole snapshot
          finish(`${err.message}; re-opening the stream for a whole snapshot`, err);
          stream.cancel();
          return;
        }
        refuse(msg, err);
        return;
      }
      streamBase = snap;
      setLive(true);
      attempt = 0;
      const resumed = first;
      first = false;
      if (last && last.version === snap.version && last.generatedAt === snap.generatedAt) return;
      if (resumed && last && sameContent(last, snap)) return; // the same content under another version: nothing to apply
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
