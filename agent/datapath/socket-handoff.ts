// Sockets handed from one agent process to another over a Unix socket: JSON lines, the
// first of which may carry file descriptors (SCM_RIGHTS, through the addon). A listening
// socket passed this way is the same kernel socket in both processes: what waits in its
// accept queue is not lost, and the inbound SOCKMAP entry stays. The conversation itself
// (who asks, who offers, when each side lets go) is agent/lifecycle/handoff.ts.
//
// The asking side talks through a blocking descriptor of its own (it has nothing else to do
// while it waits, and Node cannot receive descriptors); the offering side answers from its
// event loop on the net.Socket its Unix server accepted.
import fs from 'node:fs';
import net from 'node:net';
import { NodemeshError } from '../../common/errors.js';
import { nat, native } from './addon.js';
import { socketFd } from './socket-calls.js';

/** Longest JSON line either side sends; longer is a broken peer. */
const MAX_LINE = 64 * 1024;

export interface Received {
  msg: unknown;
  fds: number[];
}

/** A blocking connection to `path`, or undefined when nobody listens there (no predecessor, or a dead one). */
export function connectUnix(path: string): number | undefined {
  try {
    return native().unixConnect(path);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') return undefined;
    throw new NodemeshError('NM_ERR_HANDOFF', `connect to ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Sends one JSON line, with `fds` attached to it. */
export function sendLine(fd: number, msg: object, fds: number[] = []): void {
  const data = Buffer.from(JSON.stringify(msg) + '\n');
  nat('NM_ERR_HANDOFF', 'send over the handoff socket', (x) => x.sendFds(fd, data, fds));
}

/** Sends one JSON line with descriptors on a socket Node owns (the offering side). */
export function sendLineOn(socket: net.Socket, msg: object, fds: number[]): void {
  sendLine(socketFd(socket), msg, fds);
}

/**
 * Waits up to `timeoutMs` for one JSON line (and the descriptors that came with it) on a
 * blocking descriptor; undefined when the peer closed first. A peer that sends more than one
 * line at once is not part of this protocol: each side waits for the other's answer.
 */
export function receiveLine(fd: number, timeoutMs: number): Received | undefined {
  const deadline = Date.now() + timeoutMs;
  const chunks: Buffer[] = [];
  const fds: number[] = [];
  let size = 0;
  for (;;) {
    const left = Math.max(0, deadline - Date.now());
    let r: { data: Buffer; fds: number[] } | null;
    try {
      r = native().recvFds(fd, MAX_LINE, left);
    } catch (err) {
      for (const f of fds) native().closeFd(f);
      throw new NodemeshError('NM_ERR_HANDOFF', `receive over the handoff socket: ${(err as Error).message}`, { cause: err });
    }
    if (!r) {
      for (const f of fds) native().closeFd(f);
      return undefined;
    }
    fds.push(...r.fds);
    chunks.push(r.data);
    size += r.data.length;
    const text = Buffer.concat(chunks).toString('utf8');
    const nl = text.indexOf('\n');
    if (nl >= 0) {
      try {
        return { msg: JSON.parse(text.slice(0, nl)), fds };
      } catch {
        for (const f of fds) native().closeFd(f);
        throw new NodemeshError('NM_ERR_HANDOFF', `the handoff peer sent a line that is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
      }
    }
    if (size > MAX_LINE) {
      for (const f of fds) native().closeFd(f);
      throw new NodemeshError('NM_ERR_HANDOFF', `the handoff peer sent more than ${MAX_LINE} bytes without a newline`);
    }
  }
}

export function closeDescriptor(fd: number): void {
  try {
    native().closeFd(fd);
  } catch {
    // already closed
  }
}

/**
 * A Unix server at `path` (mode 0600 under a 0700 directory: only root on this node may hand
 * over an agent's sockets). A stale socket file of a dead process is replaced.
 */
export function listenUnix(path: string, onConnection: (s: net.Socket) => void): Promise<net.Server> {
  fs.rmSync(path, { force: true });
  const server = net.createServer(onConnection);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      fs.chmodSync(path, 0o600);
      resolve(server);
    });
  });
}
