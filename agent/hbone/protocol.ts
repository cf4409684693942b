// What both ends of an HBONE tunnel agree on at the TLS layer: how the client tells the
// server which workload identity to present (SNI), how a SPIFFE ID is read out of a
// certificate, and the TLS/HTTP/2 settings both use.
//
// SNI. One node proxy serves the certificates of every workload on its node, so it must
// know at handshake time which identity to present. ztunnel knows it from the address
// dialled (it listens on each pod's IP); we listen on the node's address, so the client
// says it in the SNI: a hostname made of the destination pod's IP, `10-244-1-3.pod.nodemesh.internal`
// ("Literal IPv4 and IPv6 addresses are not permitted in "HostName"", RFC 6066 §3, hence
// the dashes; `.internal` is reserved for private use). The server looks the pod up in its
// snapshot and presents the certificate of that pod's identity; it presents nothing (and
// the handshake fails) for an address that is not a meshed pod on its node. The pod IP, not
// the identity, is named: it is no more than what the connection's 4-tuple already shows
// on the pod network, while an identity in clear text would tell an observer who talks.
import type { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { joinHostPort } from '../../common/host-port.js';
import { AGENT_PORTS } from '../../common/ports.js';
import { svidSpiffeId as checkedSvidSpiffeId } from '../../control/api/x509-svid.js';

export const HBONE_PORT = AGENT_PORTS.hbone;
export const HBONE_ALPN = 'h2';
/** ztunnel speaks TLS 1.3 only between proxies. */
export const HBONE_TLS_MIN_VERSION = 'TLSv1.3' as const;
const SNI_SUFFIX = '.pod.nodemesh.internal';

// ztunnel's HTTP/2 defaults for HBONE: 4 MiB stream windows, a 16 MiB connection window,
// 1 MiB frames; at most 100 streams per pooled connection.
export const HBONE_STREAM_WINDOW = 4 * 1024 * 1024;
export const HBONE_CONNECTION_WINDOW = 16 * 1024 * 1024;
export const HBONE_MAX_FRAME = 1024 * 1024;
export const HBONE_MAX_STREAMS = 100;

/** The SNI a client sends to reach the pod at `ip` (IPv4 or IPv6). */
export function sniForPodIp(ip: string): string {
  return ip.replace(/[.:]/g, '-') + SNI_SUFFIX;
}

/** The pod IP an SNI names, or undefined when the name is not one of ours. */
export function podIpFromSni(servername: string | undefined): string | undefined {
  if (!servername) return undefined;
  const name = servername.toLowerCase();
  if (!name.endsWith(SNI_SUFFIX)) return undefined;
  const label = name.slice(0, -SNI_SUFFIX.length);
  if (/^\d{1,3}(-\d{1,3}){3}$/.test(label)) {
    const parts = label.split('-');
    return parts.every((p) => Number(p) <= 255) ? parts.join('.') : undefined;
  }
  if (/^[0-9a-f-]+$/.test(label) && label.includes('-')) return label.replace(/-/g, ':');
  return undefined;
}

/**
 * The SPIFFE ID of an X.509-SVID, or why the certificate is not one: the checks are
 * control/api/x509-svid.ts's, the same the CA and the identity manager apply ("SVIDs
 * containing more than one URI SAN MUST be rejected", not a CA, a SPIFFE ID with a path).
 */
export function svidSpiffeId(cert: X509Certificate | PeerCertificate | Buffer): { id: string } | { error: string } {
  try {
    return { id: checkedSvidSpiffeId(Buffer.isBuffer(cert) ? cert : cert.raw) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/**
 * Parses `ipv4:port` / `[ipv6]:port` of an HBONE `:authority`: stricter than a host:port
 * (an IP literal, a port 1-65535), and in one regex, as every tunnelled connection pays it.
 */
export function parseAuthority(authority: string | undefined): { ip: string; port: number } | undefined {
  if (!authority) return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(authority);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { ip: (m[1] ?? m[2])!.toLowerCase(), port };
}

/**
 * RFC 7239 §4: "for=" with a quoted "IPv4address:port" or "[IPv6]:port". Returns the first
 * `for` of the first element; undefined when absent or not an address.
 */
export function parseForwardedFor(header: string | string[] | undefined): { ip: string; port: number } | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  const m = /(?:^|[;,\s])for=("?)([^";,]+)\1/i.exec(value);
  if (!m) return undefined;
  return parseAuthority(m[2]!);
}

export function forwardedFor(ip: string, port: number): string {
  return `for="${joinHostPort(ip, port)}"`;
}
