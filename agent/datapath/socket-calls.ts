// Thin libc calls on sockets, through ffi-rs (the one place that binds libc):
//   - originalDst(): getsockopt(fd, SOL_IP, SO_ORIGINAL_DST) on an accepted socket, so the
//     proxy reads the original destination the same way whether the eBPF datapath
//     (cgroup/getsockopt answers it) or an iptables REDIRECT captured the connection;
//   - setSocketMark(): SO_MARK on a socket;
//   - markedSocket(): a not-yet-connected TCP socket that already carries a mark, for
//     upstream connections the datapath must never redirect (cgroup/connect4 checks the
//     mark at connect time, so setting it after net.connect() is too late);
//   - transparentSocket(): the same, also IP_TRANSPARENT, so Node's connect() can bind it to
//     an address that is not this node's (the inbound delivery's client's pod IP);
//   - tcpListener(): a listening socket made before Node takes it over (`server.listen({fd})`),
//     so the agent can bind first, pass it to a successor, or make the inbound capture's
//     IP_TRANSPARENT one;
//   - mallocTrim(): the allocator giving freed native memory back to the system (jemalloc's
//     purge when it is preloaded, else glibc's malloc_trim(0); not a socket call, but bound
//     here beside libc's; lifecycle/memory-trim.ts decides when).
// The functions are defined once and their buffers reused: the proxy calls
// originalDst() on every accepted connection.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { DataType, define, open } from 'ffi-rs';
import { NodemeshError, type ErrorCode } from '../../common/errors.js';
import { readIpv4, writeIpv4 } from '../../common/ip.js';

const SOL_IP = 0;
const SO_ORIGINAL_DST = 80;
const SOL_SOCKET = 1;
const SO_MARK = 36;
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SO_REUSEADDR = 2;
const IP_TRANSPARENT = 19;

export interface OriginalDst {
  ip: string;
  port: number;
}

/** A NodemeshError for a failed socket call, carrying the errno. */
export class SocketCallError extends NodemeshError {
  readonly errno: number;
  readonly errnoCode: string;
  constructor(code: ErrorCode, message: string, errno: number) {
    super(code, message);
    this.name = 'SocketCallError';
    this.errno = errno;
    this.errnoCode = errnoName(errno);
  }
}

type ErrnoResult = { value: number; errnoCode: number; errnoMessage: string };
interface Libc {
  getsockopt(args: [number, number, number, Buffer, Buffer]): ErrnoResult;
  setsockopt(args: [number, number, number, Buffer, number]): ErrnoResult;
  socket(args: [number, number, number]): ErrnoResult;
  bind(args: [number, Buffer, number]): ErrnoResult;
  listen(args: [number, number]): ErrnoResult;
  close(args: [number]): ErrnoResult;
}

let libc: Libc | undefined;
function lib(): Libc {
  if (libc) return libc;
  open({ library: 'libc', path: '' }); // the main program's handle: libc is linked in
  const i32 = DataType.I32;
  const buf = DataType.U8Array; // passed as a pointer to the Buffer's memory, written in place
  libc = define({
    getsockopt: { library: 'libc', retType: i32, paramsType: [i32, i32, i32, buf, buf], errno: true },
    setsockopt: { library: 'libc', retType: i32, paramsType: [i32, i32, i32, buf, i32], errno: true },
    socket: { library: 'libc', retType: i32, paramsType: [i32, i32, i32], errno: true },
    bind: { library: 'libc', retType: i32, paramsType: [i32, buf, i32], errno: true },
    listen: { library: 'libc', retType: i32, paramsType: [i32, i32], errno: true },
    close: { library: 'libc', retType: i32, paramsType: [i32], errno: true },
  }) as unknown as Libc;
  return libc;
}

// reused by every call (calls are synchronous, JS is single-threaded)
const sockaddr = Buffer.alloc(28); // room for a sockaddr_in6 if the kernel ever answers one
const optlen = Buffer.alloc(4);
const intOpt = Buffer.alloc(4);
const le = os.endianness() === 'LE';

/** The file descriptor behind a connected or listening net.Socket. */
export function socketFd(socket: net.Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0)
    throw new NodemeshError('NM_ERR_ORIGINAL_DST', 'socket has no file descriptor (closed, or not a TCP socket)');
  return fd;
}

/**
 * The destination the client dialled before the connection was redirected to us.
 * Throws a SocketCallError (NM_ERR_ORIGINAL_DST) when there is none: the connection was
 * not redirected (someone dialled the proxy port directly) or its record is gone.
 */
export function originalDst(socket: net.Socket): OriginalDst {
  const fd = socketFd(socket);
  sockaddr.fill(0);
  writeU32(optlen, sockaddr.length);
  const r = lib().getsockopt([fd, SOL_IP, SO_ORIGINAL_DST, sockaddr, optlen]);
  if (r.value !== 0) {
    const peer = `${socket.remoteAddress}:${socket.remotePort} -> ${socket.localAddress}:${socket.localPort}`;
    throw new SocketCallError(
      'NM_ERR_ORIGINAL_DST',
      `no original destination for ${peer}: getsockopt(SO_ORIGINAL_DST) failed with ${errnoName(r.errnoCode)}; ` +
        'the connection was not redirected by the nodemesh datapath (dialled the proxy port directly?) ' +
        "or the cgroup/getsockopt program is not attached to this process's cgroup",
      r.errnoCode,
    );
  }
  const family = le ? sockaddr.readUInt16LE(0) : sockaddr.readUInt16BE(0);
  if (family !== AF_INET)
    throw new SocketCallError('NM_ERR_ORIGINAL_DST', `SO_ORIGINAL_DST answered address family ${family}, expected AF_INET`, 0);
  return { ip: readIpv4(sockaddr, 4), port: sockaddr.readUInt16BE(2) };
}

/** setsockopt(SO_MARK): needs CAP_NET_ADMIN. */
export function setSocketMark(socket: net.Socket, mark: number): void {
  setMark(socketFd(socket), mark);
}

/**
 * A TCP socket that carries `mark` before it connects; call `.connect()` on it.
 * The datapath leaves sockets with the configured mark alone.
 */
export function markedSocket(mark: number, family: 4 | 6 = 4, opts: { allowHalfOpen?: boolean; transparent?: boolean } = {}): net.Socket {
  const r = lib().socket([family === 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0]);
  if (r.value < 0) throw new SocketCallError('NM_ERR_ORIGINAL_DST', `socket() failed: ${r.errnoMessage}`, r.errnoCode);
  try {
    setMark(r.value, mark);
    if (opts.transparent) setTransparent(r.value);
  } catch (err) {
    lib().close([r.value]);
    throw err;
  }
  const { transparent: _, ...socketOpts } = opts;
  // manualStart: do not start reading before connect() (the fd is not connected yet)
  return new net.Socket({ ...socketOpts, fd: r.value, manualStart: true } as net.SocketConstructorOpts);
}

/**
 * A marked IPv4 socket with IP_TRANSPARENT: `connect({ host, port, localAddress })` then
 * binds it to `localAddress` even though that is not an address of this node (Node's
 * connect binds before connecting), so the peer sees that address as its client. The
 * answers come back to it only because the datapath delivers them here (inbound.bpf.c).
 * One setsockopt more than markedSocket(), and Node's bind().
 */
export function transparentSocket(mark: number, opts: { allowHalfOpen?: boolean } = {}): net.Socket {
  return markedSocket(mark, 4, { ...opts, transparent: true });
}

function setTransparent(fd: number): void {
  writeU32(intOpt, 1);
  const r = lib().setsockopt([fd, SOL_IP, IP_TRANSPARENT, intOpt, 4]);
  if (r.value !== 0) {
    const hint = r.errnoCode === os.constants.errno.EPERM ? ': needs root or CAP_NET_ADMIN' : '';
    throw new SocketCallError(
      'NM_ERR_ORIGINAL_DST',
      `setsockopt(IP_TRANSPARENT) failed with ${errnoName(r.errnoCode)}${hint}`,
      r.errnoCode,
    );
  }
}

function setMark(fd: number, mark: number): void {
  if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff)
    throw new NodemeshError('NM_ERR_ORIGINAL_DST', `socket mark ${mark} is not a u32`);
  writeU32(intOpt, mark);
  const r = lib().setsockopt([fd, SOL_SOCKET, SO_MARK, intOpt, 4]);
  if (r.value !== 0) {
    const hint = r.errnoCode === os.constants.errno.EPERM ? ': needs root or CAP_NET_ADMIN' : '';
    throw new SocketCallError(
      'NM_ERR_ORIGINAL_DST',
      `setsockopt(SO_MARK=${mark}) failed with ${errnoName(r.errnoCode)}${hint}`,
      r.errnoCode,
    );
  }
}

function writeU32(b: Buffer, v: number): void {
  if (le) b.writeUInt32LE(v, 0);
  else b.writeUInt32BE(v, 0);
}

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(os.constants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

/** Closes a file descriptor Node does not own (yet). */
export function closeFd(fd: number): void {
  lib().close([fd]);
}

/**
 * A listening TCP socket with IP_TRANSPARENT on host:port (the inbound capture's 15006: the
 * kernel assigns it connections addressed to pods); returns its fd, which Node takes over
 * with `server.listen({fd})`. IP_TRANSPARENT needs CAP_NET_ADMIN; never SO_REUSEPORT
 * (bpf_sk_assign refuses reuseport listeners).
 */
export function transparentListener(host: string, port: number, backlog = 4096): number {
  return tcpListener(host, port, { transparent: true, backlog });
}

/**
 * A listening IPv4 TCP socket on host:port (SO_REUSEADDR, never SO_REUSEPORT: an agent's
 * successor takes the very socket over instead of binding beside it), optionally
 * IP_TRANSPARENT; returns its fd for `server.listen({fd})`.
 */
export function tcpListener(host: string, port: number, opts: { transparent?: boolean; backlog?: number } = {}): number {
  const what = opts.transparent ? 'inbound listener' : `listener ${host}:${port}`;
  if (!net.isIPv4(host)) throw new SocketCallError('NM_ERR_ORIGINAL_DST', `${what} address ${host} must be IPv4`, 0);
  const c = lib();
  const s = c.socket([AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0]);
  if (s.value < 0) throw new SocketCallError('NM_ERR_ORIGINAL_DST', `socket() for the ${what}: ${s.errnoMessage}`, s.errnoCode);
  const fd = s.value;
  const one = Buffer.alloc(4);
  writeU32(one, 1);
  const sin = Buffer.alloc(16); // struct sockaddr_in: family host order, port and address network order
  if (le) sin.writeUInt16LE(AF_INET);
  else sin.writeUInt16BE(AF_INET);
  sin.writeUInt16BE(port, 2);
  writeIpv4(sin, 4, host);
  const steps: Array<[string, () => ErrnoResult, string]> = [
    ...(opts.transparent
      ? [
          ['setsockopt(IP_TRANSPARENT)', () => c.setsockopt([fd, SOL_IP, IP_TRANSPARENT, one, 4]), 'needs root or CAP_NET_ADMIN'] as [
            string,
            () => ErrnoResult,
            string,
          ],
        ]
      : []),
    ['setsockopt(SO_REUSEADDR)', () => c.setsockopt([fd, SOL_SOCKET, SO_REUSEADDR, one, 4]), ''],
    [`bind(${host}:${port})`, () => c.bind([fd, sin, sin.length]), `is another agent running, or ${host} not an address of this node?`],
    ['listen()', () => c.listen([fd, opts.backlog ?? 4096]), ''],
  ];
  for (const [step, fn, hint] of steps) {
    const r = fn();
    if (r.value !== 0) {
      c.close([fd]);
      throw new SocketCallError('NM_ERR_ORIGINAL_DST', `${what}: ${step} failed: ${r.errnoMessage}${hint ? `; ${hint}` : ''}`, r.errnoCode);
    }
  }
  return fd;
}

/** The malloc serving this process: jemalloc when it is preloaded (LD_PRELOAD), else glibc's. */
export type Allocator = 'jemalloc' | 'glibc';

/** MALLCTL_ARENAS_ALL: `arena.<i>.purge` of every arena */
const JEMALLOC_PURGE_ALL = 'arena.4096.purge';

/**
 * Gives the free native memory back to the system, with the allocator's own call:
 * - jemalloc: `mallctl("arena.4096.purge")`, every arena's unused dirty pages now instead
 *   of over its decay time (10 s, and only as allocations happen); true when it succeeded
 *   (jemalloc does not say how much it released);
 * - glibc: `malloc_trim(0)` returns the free memory of every malloc arena, also the free pages
 *   between live allocations, which free() never gives back (it only trims the top of the
 *   main heap); true when some memory was released.
 * Throws where neither call exists (musl has no malloc_trim); lifecycle/memory-trim.ts then
 * stops trying.
 */
export function mallocTrim(): boolean {
  const a = allocator();
  return a.purge ? a.purge([JEMALLOC_PURGE_ALL, 0, 0, 0, 0]) === 0 : a.trim!([0]) === 1;
}

/** Which malloc serves this process (the agent logs it at start). */
export function mallocName(): Allocator {
  return allocator().name;
}

interface AllocatorCalls {
  name: Allocator;
  purge?: (args: [string, number, number, number, number]) => number;
  trim?: (args: [number]) => number;
}
let alloc: AllocatorCalls | undefined;

function allocator(): AllocatorCalls {
  if (alloc) return alloc;
  lib(); // opens the main program's handle, where a preloaded library's symbols are found too
  // ffi-rs looks a function up at its first call, not at define(): what is loaded tells instead
  if (/\/libjemalloc\.so/.test(readFileSync('/proc/self/maps', 'utf8'))) {
    // mallctl(name, oldp, oldlenp, newp, newlen), the pointers passed as 0
    const purge = (
      define({
        mallctl: {
          library: 'libc',
          retType: DataType.I32,
          paramsType: [DataType.String, DataType.I64, DataType.I64, DataType.I64, DataType.I64],
        },
      }) as unknown as { mallctl: AllocatorCalls['purge'] }
    ).mallctl;
    alloc = { name: 'jemalloc', purge };
  } else {
    const trim = (
      define({ malloc_trim: { library: 'libc', retType: DataType.I32, paramsType: [DataType.I64] } }) as unknown as {
        malloc_trim: AllocatorCalls['trim'];
      }
    ).malloc_trim;
    alloc = { name: 'glibc', trim };
  }
  return alloc;
}
