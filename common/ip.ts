// IPv4 arithmetic, once: the datapath's map keys and sockaddrs hold addresses as four bytes
// in network order, the control plane and the lab allocate and mask them as 32-bit numbers.
import { isIPv4 } from 'node:net';

/** Writes dotted-quad `ip` as four bytes, network order, at `offset`; false (nothing written) when it is not one. */
export function writeIpv4(b: Uint8Array, offset: number, ip: string): boolean {
  if (!isIPv4(ip)) return false;
  let i = offset;
  for (const part of ip.split('.')) b[i++] = Number(part);
  return true;
}

/** The dotted quad of the four bytes at `offset` (network order). */
export function readIpv4(b: Uint8Array, offset = 0): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

/** The address as an unsigned 32-bit number; undefined when `ip` is not a dotted quad. */
export function ipv4ToInt(ip: string): number | undefined {
  if (!isIPv4(ip)) return undefined;
  return ip.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
}

/** The dotted quad of an unsigned 32-bit number. */
export function intToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** `ip` with every bit past the first `len` cleared: the network of an IPv4 CIDR. */
export function maskIpv4(ip: string, len: number): string {
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return intToIpv4(((ipv4ToInt(ip) ?? 0) & mask) >>> 0);
}

/** A socket address as the dotted quad when it is an IPv4-mapped IPv6 one (`::ffff:10.0.0.1`), else as it is. */
export function unmapIpv4(ip: string): string {
  return ip.length > 7 && ip.slice(0, 7).toLowerCase() === '::ffff:' && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}
