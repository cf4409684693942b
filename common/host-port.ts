// `host:port` addresses, read and written one way everywhere: flags and options
// (`--admin 0.0.0.0:15020`), the lab's readiness probes, HBONE's `:authority`. The grammar
// is Go's net.SplitHostPort's: an IPv6 host is bracketed (`[fd00::1]:15008`), so the port
// is never ambiguous; the host may be empty (`:15014`, every address).

export interface HostPort {
  /** without brackets; '' when the address names only a port */
  host: string;
  port: number;
  /** the host was written in brackets (an IPv6 literal) */
  bracketed: boolean;
}

const HOST_PORT = /^(?:\[([^[\]]*)\]|([^:[\]]*)):(\d{1,5})$/;

/** `host:port`, `[v6]:port` or `:port`, port 0-65535; undefined when `s` is none of them. */
export function parseHostPort(s: string): HostPort | undefined {
  const m = HOST_PORT.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return m[1] !== undefined ? { host: m[1], port, bracketed: true } : { host: m[2]!, port, bracketed: false };
}

/** As parseHostPort, for addresses an operator gave: `[host, port]`, or an error that shows the expected form. */
export function splitHostPort(s: string): [string, number] {
  const hp = parseHostPort(s);
  if (!hp) throw new Error(`expected host:port (an IPv6 host in brackets, [::1]:port), got "${s}"`);
  return [hp.host, hp.port];
}

/** `host:port`, with an IPv6 host in brackets. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
