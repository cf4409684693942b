// The datapath's map keys and values, encoded and decoded once, against bpf/nodemesh.h (the
// one definition both the eBPF programs and the addon compile from). The addon reports
// sizeof/offsetof of every struct; check*Layout compares them with the layouts below, so a
// header change that the codecs missed stops the agent at load instead of corrupting maps.
//
// Byte order, as nodemesh.h defines it for all maps: IPv4 addresses and ports are NETWORK
// order (as in a struct sockaddr_in); cookies, marks, flags and ifindexes are HOST order.
// No addon here: the pure half of the datapath, shared by redirect.ts and inbound.ts.
import os from 'node:os';
import { NodemeshError } from '../../common/errors.js';
import { readIpv4, writeIpv4 } from '../../common/ip.js';
import { AGENT_PORTS } from '../../common/ports.js';

export interface StructLayout {
  size: number;
  offsets: Record<string, number>;
}

/** What the addon reports of bpf/nodemesh.h (native/addon.cc Layout()). */
export interface NativeLayout {
  nm_config: StructLayout;
  nm_orig_dst: StructLayout;
  nm_tuple4: StructLayout;
  netnsKeySize: number;
  netnsValueSize: number;
  cookieKeySize: number;
  defaultProxyPort: number;
  netnsFlagEnrolled: number;
  netnsFlagFailOpen: number;
  origFlagV4Mapped: number;
  nm_liveness: StructLayout;
  maps: { config: string; meshNetns: string; origByCookie: string; origByTuple: string; liveness: string };
  nm_inbound_config: StructLayout;
  nm_inbound_port: StructLayout;
  inboundFlagCapture: number;
  inboundFlagFailOpen: number;
  defaultInboundPort: number;
  inboundMaps: { config: string; pods: string; listener: string; ports: string };
}

// ---- the structs (bpf/nodemesh.h) ---------------------------------------------------

export const CONFIG = { size: 16, offsets: { proxy_ip4: 0, proxy_port: 4, mark: 8, flags: 12 } };
export const ORIG_DST = { size: 8, offsets: { ip4: 0, port: 4, flags: 6 } };
export const TUPLE4 = { size: 12, offsets: { client_ip4: 0, proxy_ip4: 4, client_port: 8, proxy_port: 10 } };
export const INBOUND_CONFIG = { size: 16, offsets: { mark: 0, mask: 4, flags: 8 } };
export const INBOUND_PORT = { size: 8, offsets: { bridge_ifindex: 0, flags: 4 } };
export const LIVENESS = { size: 16, offsets: { heartbeat_ns: 0, timeout_ns: 8 } };
/** netns and socket cookies, the listener's fd or cookie */
export const U64 = 8;
/** the ARRAY maps' key 0, netns and pod flags, pod IPv4 keys, ifindexes */
export const U32 = 4;

function sameLayout(ts: StructLayout, c: StructLayout | undefined): boolean {
  return c !== undefined && ts.size === c.size && Object.entries(ts.offsets).every(([f, o]) => c.offsets[f] === o);
}

/** The redirect datapath's structs and sizes, and the proxy port both sides default to. */
export function checkLayout(l: NativeLayout): void {
  const want: Array<[string, StructLayout, StructLayout]> = [
    ['nm_config', CONFIG, l.nm_config],
    ['nm_orig_dst', ORIG_DST, l.nm_orig_dst],
    ['nm_tuple4', TUPLE4, l.nm_tuple4],
    ['nm_liveness', LIVENESS, l.nm_liveness],
  ];
  for (const [name, ts, c] of want) {
    if (!sameLayout(ts, c))
      throw new NodemeshError(
        'NM_ERR_BPF',
        `struct ${name} in bpf/nodemesh.h (${JSON.stringify(c)}) does not match the codec in agent/datapath/codecs.ts (${JSON.stringify(ts)}); update the codec and DATAPATH_PIN_VERSION`,
      );
  }
  if (l.netnsKeySize !== U64 || l.netnsValueSize !== U32 || l.cookieKeySize !== U64)
    throw new NodemeshError(
      'NM_ERR_BPF',
      'nm_mesh_netns/nm_orig_by_cookie key or value size changed in bpf/nodemesh.h; update agent/datapath/codecs.ts',
    );
  checkPort('NM_DEFAULT_PROXY_PORT', l.defaultProxyPort, AGENT_PORTS.outbound);
  checkFlag('NM_NETNS_F_ENROLLED', l.netnsFlagEnrolled, NETNS_FLAGS.enrolled);
  checkFlag('NM_NETNS_F_FAIL_OPEN', l.netnsFlagFailOpen, NETNS_FLAGS.failOpen);
}

/** The inbound capture's structs, and its port. */
export function checkInboundLayout(l: NativeLayout): void {
  for (const [name, ts, c] of [
    ['nm_inbound_config', INBOUND_CONFIG, l.nm_inbound_config],
    ['nm_inbound_port', INBOUND_PORT, l.nm_inbound_port],
  ] as const) {
    if (!sameLayout(ts, c))
      throw new NodemeshError(
        'NM_ERR_BPF',
        `struct ${name} in bpf/nodemesh.h (${JSON.stringify(c)}) does not match the codec in agent/datapath/codecs.ts; rebuild (bash scripts/build.sh) or update the codec`,
      );
  }
  checkPort('NM_DEFAULT_INBOUND_PORT', l.defaultInboundPort, AGENT_PORTS.inbound);
  checkFlag('NM_INBOUND_F_CAPTURE', l.inboundFlagCapture, INBOUND_FLAGS.capture);
  checkFlag('NM_INBOUND_F_FAIL_OPEN', l.inboundFlagFailOpen, INBOUND_FLAGS.failOpen);
}

function checkFlag(name: string, header: number, ours: number): void {
  if (header !== ours)
    throw new NodemeshError('NM_ERR_BPF', `${name} is ${header} in bpf/nodemesh.h but ${ours} in agent/datapath/codecs.ts; update the codec and DATAPATH_PIN_VERSION`);
}

function checkPort(name: string, header: number, ours: number): void {
  if (header !== ours)
    throw new NodemeshError(
      'NM_ERR_BPF',
      `${name} is ${header} in bpf/nodemesh.h but ${ours} in common/ports.ts; make them agree and rebuild (bash scripts/build.sh)`,
    );
}

/** nm_mesh_netns values (NM_NETNS_F_*) */
export const NETNS_FLAGS = { enrolled: 1, failOpen: 2 } as const;
/** nm_inbound_pods values (NM_INBOUND_F_*) */
export const INBOUND_FLAGS = { capture: 1, failOpen: 2 } as const;

// ---- numbers (host order) and addresses (network order) ----------------------------------

const LE = os.endianness() === 'LE';

export function u32(v: number): Buffer {
  const b = Buffer.alloc(U32);
  if (LE) b.writeUInt32LE(v);
  else b.writeUInt32BE(v);
  return b;
}

export function readU32(b: Buffer): number {
  return LE ? b.readUInt32LE(0) : b.readUInt32BE(0);
}

export function u64(v: bigint | number): Buffer {
  const b = Buffer.alloc(U64);
  if (LE) b.writeBigUInt64LE(BigInt(v));
  else b.writeBigUInt64BE(BigInt(v));
  return b;
}

export function readU64(b: Buffer): bigint {
  return LE ? b.readBigUInt64LE(0) : b.readBigUInt64BE(0);
}

function writeU32At(b: Buffer, v: number, off: number): void {
  if (LE) b.writeUInt32LE(v, off);
  else b.writeUInt32BE(v, off);
}

function writeIp4(b: Buffer, off: number, ip: string): void {
  if (!writeIpv4(b, off, ip)) throw new NodemeshError('NM_ERR_BPF', `${ip} is not an IPv4 address`);
}

/** A pod's IPv4 as the key of nm_inbound_pods. */
export function ip4Key(ip: string): Buffer {
  const b = Buffer.alloc(U32);
  writeIp4(b, 0, ip);
  return b;
}

export function readIp4Key(b: Buffer): string {
  return readIpv4(b, 0);
}

// ---- the redirect datapath's structs ----------------------------------------------------

export interface DatapathConfig {
  proxyIp: string;
  proxyPort: number;
  mark: number;
}

/** A redirected connection's 4-tuple as the proxy sees it on its accepted socket. */
export interface ProxyTuple {
  clientIp: string;
  clientPort: number;
  proxyIp: string;
  proxyPort: number;
}

export interface OriginalDestination {
  ip: string;
  port: number;
  /** the app dialled ::ffff:ip through connect6 */
  v4Mapped: boolean;
}

export function encodeConfig(c: DatapathConfig): Buffer {
  const b = Buffer.alloc(CONFIG.size);
  writeIp4(b, CONFIG.offsets.proxy_ip4, c.proxyIp);
  b.writeUInt16BE(c.proxyPort, CONFIG.offsets.proxy_port);
  writeU32At(b, c.mark, CONFIG.offsets.mark);
  return b;
}

/**
 * nm_liveness: `heartbeatNs` is CLOCK_MONOTONIC in nanoseconds (what bpf_ktime_get_ns()
 * reads), 0 for "down".
 */
export function encodeLiveness(heartbeatNs: bigint, timeoutNs: bigint): Buffer {
  const b = Buffer.alloc(LIVENESS.size);
  if (LE) {
    b.writeBigUInt64LE(heartbeatNs, LIVENESS.offsets.heartbeat_ns);
    b.writeBigUInt64LE(timeoutNs, LIVENESS.offsets.timeout_ns);
  } else {
    b.writeBigUInt64BE(heartbeatNs, LIVENESS.offsets.heartbeat_ns);
    b.writeBigUInt64BE(timeoutNs, LIVENESS.offsets.timeout_ns);
  }
  return b;
}

export function decodeLiveness(b: Buffer): { heartbeatNs: bigint; timeoutNs: bigint } {
  return LE
    ? { heartbeatNs: b.readBigUInt64LE(LIVENESS.offsets.heartbeat_ns), timeoutNs: b.readBigUInt64LE(LIVENESS.offsets.timeout_ns) }
    : { heartbeatNs: b.readBigUInt64BE(LIVENESS.offsets.heartbeat_ns), timeoutNs: b.readBigUInt64BE(LIVENESS.offsets.timeout_ns) };
}

export function encodeTuple(t: ProxyTuple): Buffer {
  const b = Buffer.alloc(TUPLE4.size);
  writeIp4(b, TUPLE4.offsets.client_ip4, t.clientIp);
  writeIp4(b, TUPLE4.offsets.proxy_ip4, t.proxyIp);
  b.writeUInt16BE(t.clientPort, TUPLE4.offsets.client_port);
  b.writeUInt16BE(t.proxyPort, TUPLE4.offsets.proxy_port);
  return b;
}

export function decodeTuple(b: Buffer): ProxyTuple {
  return {
    clientIp: readIpv4(b, TUPLE4.offsets.client_ip4),
    clientPort: b.readUInt16BE(TUPLE4.offsets.client_port),
    proxyIp: readIpv4(b, TUPLE4.offsets.proxy_ip4),
    proxyPort: b.readUInt16BE(TUPLE4.offsets.proxy_port),
  };
}

/** `v4MappedFlag`: NM_ORIG_F_V4MAPPED, as the addon reports it. */
export function decodeOrig(b: Buffer, v4MappedFlag: number): OriginalDestination {
  const flags = LE ? b.readUInt16LE(ORIG_DST.offsets.flags) : b.readUInt16BE(ORIG_DST.offsets.flags);
  return {
    ip: readIpv4(b, ORIG_DST.offsets.ip4),
    port: b.readUInt16BE(ORIG_DST.offsets.port),
    v4Mapped: (flags & v4MappedFlag) !== 0,
  };
}

// ---- the inbound capture's structs ------------------------------------------------------

export function encodeInboundConfig(mark: number, mask: number): Buffer {
  const b = Buffer.alloc(INBOUND_CONFIG.size);
  writeU32At(b, mark, INBOUND_CONFIG.offsets.mark);
  writeU32At(b, mask, INBOUND_CONFIG.offsets.mask);
  return b;
}

export function encodeInboundPort(bridgeIfindex: number): Buffer {
  const b = Buffer.alloc(INBOUND_PORT.size);
  writeU32At(b, bridgeIfindex, INBOUND_PORT.offsets.bridge_ifindex);
  return b;
}
