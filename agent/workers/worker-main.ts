// A proxy worker process (the entry the primary forks, worker-pool.ts): serves the agent's
// listeners, inherited as descriptors (protocol.ts WORKER_FDS), and the HBONE connections the
// primary hands it, from the snapshot and
// identities the primary sends, and answers its questions (metrics, open connections,
// debug). It holds no control-plane stream, no datapath and no CA client. It lives only as
// long as its primary: when the IPC channel goes (the primary exited or crashed) it cuts
// its connections and exits, so that no orphan keeps the listening sockets open.
import type { Socket } from 'node:net';
import { logger } from '../../common/log.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { ProxyState } from '../state/proxy-state.js';
import { reauthorizeInbound } from '../proxy/authorized-connections.js';
import { passthroughGuard } from '../proxy/passthrough-guard.js';
import { collectAgentProcessMetrics, registry } from '../telemetry/metrics.js';
import { connectionChannel, requestChannel, type ConnectionEvent, type RequestEvent } from '../telemetry/tap.js';
import { applyTelemetry, closeTelemetry, configureTelemetry } from '../telemetry/telemetry-config.js';
import { WORKER_FDS, type FromWorker, type ToWorker } from './protocol.js';
import { RemoteIdentity } from './remote-identity.js';
import { ProxyServing } from './serving.js';

const log = logger('agent/worker');

/** How long a worker may take to cut what is left once told to close (then it exits anyway). */
const CLOSE_MS = 5_000;

function send(m: FromWorker): void {
  if (process.connected) process.send!(m);
}

let state = ProxyState.EMPTY;
let serving: ProxyServing | undefined;
let identity: RemoteIdentity | undefined;
let closing = false;

const forwardConnection = (event: unknown) => send({ op: 'tap', kind: 'connection', event: event as ConnectionEvent });
const forwardRequest = (event: unknown) => send({ op: 'tap', kind: 'request', event: event as RequestEvent });

function applySnapshot(s: Snapshot | undefined): void {
  if (!s) return;
  state = new ProxyState(s);
  // the connections this worker serves meet the new policy (closed if it no longer admits them)
  reauthorizeInbound(() => state.security);
  applyTelemetry(s); // access logs and traces are written where requests are served
}

async function exit(code: number): Promise<void> {
  if (closing) return;
  closing = true;
  setTimeout(() => process.exit(code), CLOSE_MS).unref();
  try {
    identity?.close();
    await serving?.close();
    await closeTelemetry();
  } catch (err) {
    log.warn({ err }, 'worker close');
  }
  send({ op: 'closed' });
  process.exit(code);
}

async function answer(what: string): Promise<unknown> {
  if (what === 'metrics') return registry.getMetricsAsJSON();
  if (what === 'open') return serving ? serving.openConnections() : 0;
  if (what === 'debug') {
    // the requests this worker proxied (reporter=source), so that one can see who served what;
    // a worker just (re)started answers before it serves: `listening` says which it is
    const requests = (await registry.getSingleMetric('istio_requests_total')?.get())?.values.reduce((a, v) => a + v.value, 0) ?? 0;
    return {
      pid: process.pid,
      listening: serving !== undefined,
      snapshotVersion: state.version,
      requests,
      ...(serving ? await serving.debug() : {}),
    };
  }
  return undefined;
}

process.on('message', (m: ToWorker, handle?: unknown) => {
  switch (m.op) {
    case 'hbone-connection': {
      const socket = handle as Socket | undefined;
      if (!socket) return;
      // the primary counts what each worker holds, to hand the next one to the least busy
      socket.once('close', () => send({ op: 'hbone-closed' }));
      if (serving && !closing) serving.acceptHbone(socket);
      else socket.destroy();
      return;
    }
    case 'start': {
      configureTelemetry({ NODEMESH_NODE_NAME: m.config.node, ...process.env });
      applySnapshot(m.snapshot);
      passthroughGuard.configure(m.guard);
      if (m.hbone) {
        identity = new RemoteIdentity((id, spiffeId) => send({ op: 'certificate', id, spiffeId }));
        if (m.identities) identity.update(m.identities);
      }
      // HBONE connections come from the primary, one message each ('hbone-connection')
      ProxyServing.start(m.config, WORKER_FDS, () => state, identity, m.hbone).then(
        (s) => {
          serving = s;
          log.info({ worker: m.index }, 'proxy worker serving');
          send({ op: 'listening' });
          void collectAgentProcessMetrics();
        },
        (err: unknown) => {
          log.error({ err, worker: m.index }, 'proxy worker failed to start');
          void exit(1);
        },
      );
      return;
    }
    case 'snapshot':
      return applySnapshot(m.snapshot);
    case 'identities':
      return identity?.update(m.identities);
    case 'certificate':
      return identity?.answered(m.id, m.certificate, m.error);
    case 'ask':
      answer(m.what).then(
        (value) => send({ op: 'answer', id: m.id, value }),
        (err: unknown) => send({ op: 'answer', id: m.id, value: { error: String(err) } }),
      );
      return;
    case 'tap':
      if (m.kind === 'request') {
        if (m.on) requestChannel.subscribe(forwardRequest);
        else requestChannel.unsubscribe(forwardRequest);
      } else if (m.on) connectionChannel.subscribe(forwardConnection);
      else connectionChannel.unsubscribe(forwardConnection);
      return;
    case 'stop-accepting':
      return serving?.stopAccepting();
    case 'close':
      return void exit(0);
  }
});
// the primary is gone: nobody sends state or drains us; free the listeners for the next agent
process.on('disconnect', () => {
  if (!closing) log.warn('the agent went away; this proxy worker cuts its connections and exits');
  void exit(0);
});
// SIGTERM/SIGINT reach the whole process group (a terminal's ^C, a container stop): the
// primary drains its workers, so a worker waits for the primary's word
process.on('SIGTERM', () => {});
process.on('SIGINT', () => {});
