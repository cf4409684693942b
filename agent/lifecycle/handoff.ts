// Hitless upgrade: a new agent takes the listening sockets over from the one running on
// its node, so that no connection is refused while agents change. Envoy's hot restart and
// HAProxy's seamless reload do the same; a DaemonSet with `maxSurge` starts the new pod
// before the old one stops, and both share <state dir>/handoff.sock on the node.
//
//   new → old   {"op":"takeover","pid":…}              on connect
//   old → new   {"op":"listeners","listeners":[…]}     + the descriptors (SCM_RIGHTS); the
//               old one wrote its last good state first, so the new one starts from it
//   (both accept on the same sockets now; the new one loads and gets ready)
//   new → old   {"op":"taken"}                          the new one serves
//   old → new   {"op":"released"}                       the old one stopped accepting, stopped
//               writing the datapath and its heartbeat; it drains and exits on its own
//
// Either side may go away at any step: before "taken" the old one simply keeps serving (a
// successor that died took nothing away: the sockets are the old one's as much as they
// were its), after "released" the new one serves alone.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { closeDescriptor, connectUnix, listenUnix, receiveLine, sendLine, sendLineOn } from '../datapath/socket-handoff.js';
import { sameAddress, type HeldListener, type ListenerAddress } from './listeners.js';

const log = logger('agent/handoff');

export const HANDOFF_SOCKET = 'handoff.sock';
/** how long either side waits for the other's next line (the new agent's start aside) */
const STEP_MS = 5_000;
/** how long an old agent waits for its successor to get ready before it stops listening to it */
const SUCCESSOR_READY_MS = 120_000;

export function handoffPath(stateDir: string): string {
  return path.join(stateDir, HANDOFF_SOCKET);
}

/** The agent this one takes over from, between the offer and the release. */
export interface Predecessor {
  pid: number;
  /** We serve: resolves once it stopped accepting (or went away, or did not answer in time). */
  confirm(): Promise<void>;
  /** We give up before serving: it keeps serving as if we never came. */
  abandon(): void;
}

export interface TakeOver {
  /** the offered listeners this agent wants (same name and address); others are closed */
  listeners: HeldListener[];
  predecessor: Predecessor;
}

/**
 * The new agent's first step, before it loads anything heavy: asks the agent listening at
 * <stateDir>/handoff.sock for its listening sockets. Undefined when there is none (a first
 * start, or a restart after a crash: then the caller binds its own).
 */
export function takeOver(stateDir: string, wanted: readonly ListenerAddress[]): TakeOver | undefined {
  const where = handoffPath(stateDir);
  const fd = connectUnix(where);
  if (fd === undefined) return undefined;
  let r;
  try {
    sendLine(fd, { op: 'takeover', pid: process.pid });
    r = receiveLine(fd, STEP_MS);
  } catch (err) {
    closeDescriptor(fd);
    throw err;
  }
  if (!r) {
    closeDescriptor(fd); // it is on its way out: bind our own once it is gone
    return undefined;
  }
  const offer = r.msg as { op?: unknown; pid?: unknown; listeners?: unknown };
  const offered = Array.isArray(offer.listeners) ? (offer.listeners as ListenerAddress[]) : [];
  if (offer.op !== 'listeners' || offered.length !== r.fds.length || typeof offer.pid !== 'number') {
    for (const f of r.fds) closeDescriptor(f);
    closeDescriptor(fd);
    throw new NodemeshError('NM_ERR_HANDOFF', `the agent at ${where} answered ${JSON.stringify(offer).slice(0, 200)} with ${r.fds.length} descriptors: not a handoff offer this agent understands`);
  }
  const listeners: HeldListener[] = [];
  offered.forEach((a, i) => {
    if (wanted.some((w) => sameAddress(w, a))) listeners.push({ name: a.name, host: a.host, port: a.port, fd: r.fds[i]! });
    else closeDescriptor(r.fds[i]!);
  });
  const pid = offer.pid;
  log.info({ predecessor: pid, listeners: listeners.map((l) => `${l.name} ${l.host}:${l.port}`) }, 'took the listening sockets over from the running agent');
  // from here on the conversation is asynchronous: this agent serves while it waits
  const socket = new net.Socket({ fd, readable: true, writable: true });
  socket.on('error', () => {});
  return {
    listeners,
    predecessor: {
      pid,
      confirm: () =>
        new Promise<void>((resolve) => {
          let over = false;
          const done = (how: string) => {
            if (over) return;
            over = true;
            clearTimeout(timer);
            socket.destroy();
            if (how !== 'released') log.warn({ predecessor: pid, how }, 'the agent before this one did not confirm it stopped accepting');
            resolve();
          };
          const timer = setTimeout(() => done('timeout'), STEP_MS);
          readLines(socket, (m) => ((m as { op?: unknown }).op === 'released' ? done('released') : undefined));
          socket.once('close', () => done('closed'));
          socket.write(JSON.stringify({ op: 'taken', pid: process.pid }) + '\n');
        }),
      abandon: () => socket.destroy(),
    },
  };
}

/** What the running agent gives its successor. */
export interface HandoffSource {
  /** the listening sockets in use */
  listeners(): HeldListener[];
  /** before they go: write the last good state, so the successor starts from it */
  prepare(): void;
  /** the successor serves: stop accepting, stop writing the datapath and the heartbeat */
  release(): Promise<void>;
}

export interface HandoffServer {
  /** resolves once a successor took over and this agent released its listeners */
  readonly handedOver: Promise<void>;
  close(): Promise<void>;
}

/**
 * The running agent's side: serves one successor at a time at <stateDir>/handoff.sock.
 * Listening starts once the agent serves, so nobody takes over a half-started agent.
 */
export async function offerHandoff(stateDir: string, source: HandoffSource): Promise<HandoffServer> {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  let busy = false;
  let closed = false;
  let handedOver!: () => void;
  const done = new Promise<void>((resolve) => (handedOver = resolve));
  const server = await listenUnix(handoffPath(stateDir), (s) => {
    s.on('error', () => {});
    if (busy || closed) {
      s.destroy(); // one successor at a time; it will retry, or bind once we are gone
      return;
    }
    busy = true;
    let stage: 'asked' | 'offered' | 'taken' = 'asked';
    let timer = setTimeout(() => s.destroy(), STEP_MS);
    s.once('close', () => {
      clearTimeout(timer);
      if (stage !== 'taken') {
        busy = false;
        if (stage === 'offered') log.warn('the successor went away before it served; this agent keeps serving');
      }
    });
    readLines(s, (m) => {
      const msg = m as { op?: unknown; pid?: unknown };
      if (stage === 'asked' && msg.op === 'takeover') {
        source.prepare();
        const ls = source.listeners();
        sendLineOn(s, { op: 'listeners', pid: process.pid, listeners: ls.map(({ name, host, port }) => ({ name, host, port })) }, ls.map((l) => l.fd));
        stage = 'offered';
        clearTimeout(timer);
        timer = setTimeout(() => s.destroy(), SUCCESSOR_READY_MS);
        timer.unref();
        log.info({ successor: msg.pid }, 'handed the listening sockets to a successor; serving beside it until it is ready');
        return;
      }
      if (stage === 'offered' && msg.op === 'taken') {
        stage = 'taken';
        clearTimeout(timer);
        closed = true;
        // close the Unix server first: closing it unlinks the path, which the successor
        // binds for its own successor as soon as it reads "released"
        server.close();
        void source.release().then(
          () => {
            s.end(JSON.stringify({ op: 'released' }) + '\n');
            log.info({ successor: msg.pid }, 'the successor serves; this agent stopped accepting and drains');
            handedOver();
          },
          (err: unknown) => {
            log.error({ err }, 'releasing the listeners failed');
            s.destroy();
            handedOver();
          },
        );
        return;
      }
      s.destroy(); // out of order: not our protocol
    });
  });
  return {
    handedOver: done,
    close: () =>
      new Promise<void>((resolve) => {
        closed = true;
        server.close(() => resolve());
      }),
  };
}

/** Calls `onLine` with each JSON line read from `s`; a line that is not JSON ends it. */
function readLines(s: net.Socket, onLine: (msg: unknown) => void): void {
  let buf = '';
  s.setEncoding('utf8');
  s.on('data', (chunk: string) => {
    buf += chunk;
    if (buf.length > 64 * 1024) {
      s.destroy();
      return;
    }
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        s.destroy();
        return;
      }
      onLine(msg);
    }
  });
}
