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
