// The node proxy's inbound capture port (15006): plaintext connections to a meshed pod of
// this node that bypassed the mesh (a pod that is not meshed, a client on the pod network,
// another node's unmeshed pod) are steered here in the kernel by bpf/inbound.bpf.c.
//
// The listener is IP_TRANSPARENT (bpf_sk_assign needs that to hand it a SYN for an address
// that is not the node's; it must not be SO_REUSEPORT), so the accepted socket carries the
// address the client dialled as its own local address: `localAddress:localPort` IS the
// original destination, no lookup needed. Each accepted connection goes to deliverInbound
// (inbound policy: PeerAuthentication, AuthorizationPolicy; destination-side telemetry)
// as plaintext (`security: 'none'`) from an unknown principal; a refusal resets it.
import net from 'node:net';
import os from 'node:os';
import type { Duplex } from 'node:stream';
import { DataType, define, open } from 'ffi-rs';
import { logger } from '../control/api/log.js';
import type { Workload } from '../control/api/snapshot.js';
import type { InboundConnection, InboundResult } from './inbound-delivery.js';
import { proxyErrors } from './metrics.js';
import { SocketCallError } from './original-dst.js';
import { connectionChannel, type ConnectionEvent } from './outbound-proxy.js';
import { ResponseFlag } from './response-flags.js';

const log = logger('agent/inbound-capture');

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SOL_IP = 0;
const IP_TRANSPARENT = 19;

type ErrnoResult = { value: number; errnoCode: number; errnoMessage: string };
interface Libc {
  socket(args: [number, number, number]): ErrnoResult;
  setsockopt(args: [number, number, number, Buffer, number]): ErrnoResult;
  bind(args: [number, Buffer, number]): ErrnoResult;
  listen(args: [number, number]): ErrnoResult;
  close(args: [number]): ErrnoResult;
}

let libc: Libc | undefined;
function lib(): Libc {
  if (libc) return libc;
  open({ library: 'libc-inbound', path: '' }); // the main program's handle: libc is linked in
  const i32 = DataType.I32;
  const buf = DataType.U8Array;
  libc = define({
    socket: { library: 'libc-inbound', retType: i32, paramsType: [i32, i32, i32], errno: true },
    setsockopt: { library: 'libc-inbound', retType: i32, paramsType: [i32, i32, i32, buf, i32], errno: true },
    bind: { library: 'libc-inbound', retType: i32, paramsType: [i32, buf, i32], errno: true },
    listen: { library: 'libc-inbound', retType: i32, paramsType: [i32, i32], errno: true },
    close: { library: 'libc-inbound', retType: i32, paramsType: [i32], errno: true },
  }) as unknown as Libc;
  return libc;
}

/**
 * A listening TCP socket with IP_TRANSPARENT on host:port; returns its fd (Node takes it
 * over with `server.listen({fd})`). IP_TRANSPARENT needs CAP_NET_ADMIN.
 */
export function transparentListener(host: string, port: number, backlog = 4096): number {
  if (!net.isIPv4(host)) throw new SocketCallError('NM_ERR_ORIGINAL_DST', `inbound listener address ${host} must be IPv4`, 0);
  const c = lib();
  const s = c.socket([AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0]);
  if (s.value < 0) throw new SocketCallError('NM_ERR_ORIGINAL_DST', `socket() for the inbound listener: ${s.errnoMessage}`, s.errnoCode);
  const fd = s.value;
  const le = os.endianness() === 'LE';
  const one = Buffer.alloc(4);
  if (le) one.writeInt32LE(1);
  else one.writeInt32BE(1);
  const sin = Buffer.alloc(16); // struct sockaddr_in: family host order, port and address network order
  if (le) sin.writeUInt16LE(AF_INET);
  else sin.writeUInt16BE(AF_INET);
  sin.writeUInt16BE(port, 2);
  Buffer.from(host.split('.').map(Number)).copy(sin, 4);
  const steps: Array<[string, () => ErrnoResult, string]> = [
    ['setsockopt(IP_TRANSPARENT)', () => c.setsockopt([fd, SOL_IP, IP_TRANSPARENT, one, 4]), 'needs root or CAP_NET_ADMIN'],
    ['setsockopt(SO_REUSEADDR)', () => c.setsockopt([fd, SOL_SOCKET, SO_REUSEADDR, one, 4]), ''],
    [`bind(${host}:${port})`, () => c.bind([fd, sin, sin.length]), `is another agent running, or ${host} not an address of this node?`],
    ['listen()', () => c.listen([fd, backlog]), ''],
  ];
  for (const [what, fn, hint] of steps) {
    const r = fn();
    if (r.value !== 0) {
      c.close([fd]);
      throw new SocketCallError('NM_ERR_ORIGINAL_DST', `inbound listener: ${what} failed: ${r.errnoMessage}${hint ? `; ${hint}` : ''}`, r.errnoCode);
    }
  }
  return fd;
}

/** What the capture needs of the snapshot. */
export interface WorkloadLookup {
  workloadByIp(ip: string): Workload | undefined;
}

/** deliverInbound with the agent's connector and current policy bound. */
export type InboundDeliver = (stream: Duplex, c: InboundConnection) => Promise<InboundResult>;

export interface InboundCaptureOptions {
  /** the node's address (the proxy IP) */
  host: string;
  port: number;
  /** this node's name: only its meshed pods are served */
  node: string;
  index: () => WorkloadLookup;
  deliver: InboundDeliver;
}

/** Published on `nodemesh tap` beside the outbound connections. */
export interface InboundCaptureEvent extends ConnectionEvent {
  direction: 'inbound';
  security: 'none';
}

export class InboundCapture {
  private readonly server: net.Server;
  private listenFd = -1;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly opts: InboundCaptureOptions) {
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => void this.accept(s));
  }

  /** The listener's fd, for nm_inbound_listener; -1 until listen(). */
  get fd(): number {
    return this.listenFd;
  }

  get listening(): boolean {
    return this.server.listening;
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  listen(): Promise<void> {
    const fd = transparentListener(this.opts.host, this.opts.port);
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        lib().close([fd]);
        reject(err);
      };
      this.server.once('error', fail);
      this.server.listen({ fd }, () => {
        this.server.off('error', fail);
        this.server.on('error', (err) => log.error({ err }, 'inbound listener error'));
        this.listenFd = fd;
        log.info({ address: `${this.opts.host}:${this.opts.port}`, fd }, 'inbound capture listening (IP_TRANSPARENT)');
        resolve();
      });
    });
  }

  /** Stops accepting (the kernel drops the socket from nm_inbound_listener on close). */
  async close(force = false): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (force) for (const s of this.sockets) s.destroy();
    this.listenFd = -1;
    await closed;
  }

  private async accept(socket: net.Socket): Promise<void> {
    socket.on('error', () => {}); // the pipe in deliverInbound, or the reset below, ends it
    const started = performance.now();
    const dstIp = socket.localAddress?.replace(/^::ffff:/, '') ?? '';
    const dstPort = socket.localPort ?? 0;
    const srcIp = socket.remoteAddress?.replace(/^::ffff:/, '') ?? '';
    const srcPort = socket.remotePort ?? 0;
    const idx = this.opts.index();
    const destination = idx.workloadByIp(dstIp);
    const event = {
      source: `${srcIp}:${srcPort}`,
      sourceWorkload: idx.workloadByIp(srcIp)?.uid ?? 'unknown',
      originalDestination: `${dstIp}:${dstPort}`,
      service: 'inbound plaintext',
      upstream: `${dstIp}:${dstPort}`,
    };
    if (!destination || destination.node !== this.opts.node || !destination.meshed) {
      // dialled 15006 directly, or the pod stopped being meshed here since the kernel chose
      proxyErrors.inc({ reason: 'inbound_not_a_meshed_pod' });
      log.warn({ client: event.source, destination: event.originalDestination }, 'captured connection is not for a meshed pod of this node; resetting');
      this.publish('open', event, ResponseFlag.NoRoute, socket, started);
      socket.resetAndDestroy();
      this.publish('close', event, ResponseFlag.NoRoute, socket, started);
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const c: InboundConnection = {
      destination,
      port: dstPort,
      sourceIp: srcIp,
      sourcePort: srcPort,
      sourcePrincipal: undefined,
      security: 'none',
    };
    this.publish('open', event, ResponseFlag.None, socket, started);
    let result: InboundResult;
    try {
      result = await this.opts.deliver(socket, c);
    } catch (err) {
      result = { delivered: false, flag: ResponseFlag.UpstreamConnectionFailure, reason: (err as Error).message };
    }
    if (!result.delivered) {
      // STRICT, a DENY, or the pod refused: a plaintext client gets a reset
      proxyErrors.inc({ reason: result.flag });
      log.debug({ client: event.source, destination: event.originalDestination, flag: result.flag, reason: result.reason }, 'captured connection refused');
      if (!socket.destroyed) socket.resetAndDestroy();
      this.publish('close', event, result.flag, socket, started);
      return;
    }
    socket.once('close', () => this.publish('close', event, ResponseFlag.None, socket, started));
  }

  private publish(kind: 'open' | 'close', base: Omit<ConnectionEvent, 'event' | 'time' | 'responseFlags' | 'receivedBytes' | 'sentBytes' | 'durationMs'>, flags: string, s: net.Socket, started: number): void {
    if (!connectionChannel.hasSubscribers) return;
    const e: InboundCaptureEvent = {
      event: kind,
      time: new Date().toISOString(),
      ...base,
      responseFlags: flags,
      receivedBytes: s.bytesRead,
      sentBytes: s.bytesWritten,
      durationMs: Math.round(performance.now() - started),
      direction: 'inbound',
      security: 'none',
    };
    connectionChannel.publish(e);
  }
}
