// The HAProxy pair the suite compares nodemesh with: two haproxy processes (Debian's 2.6),
// lab pods haproxy-a on node-a and haproxy-b on node-b, with a verified mutual-TLS hop between
// them — what two sidecars, or two node proxies of another mesh, would do. The client speaks
// plaintext to haproxy-a (as a meshed pod to its node proxy); haproxy-a opens TLS to haproxy-b
// presenting its client certificate and verifying haproxy-b's (CA and name); haproxy-b
// requires and verifies the client certificate, then speaks plaintext to the backend.
//
// Four pairs of frontends, one per (mode, key type): TCP mode (the L4 comparison: one TLS
// connection per client connection) and HTTP mode (the L7 comparison: requests parsed, the
// hop between the two is HTTP/2 over TLS, multiplexed and reused as HBONE is); RSA-2048
// certificates as nodemesh's, and ECDSA P-256. Certificates come from a throwaway CA per key
// type made with the openssl CLI for the run.
//
// One thread each (`nbthread 1`): the agent runs one event loop today, so the pair gets one
// too and "CPU per request" compares one loop with one loop. When the agent gains workers,
// BENCH_HAPROXY_THREADS gives the pair as many.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { BACKEND_PORTS, type Proto, type VariantId } from './settings.js';

export type PairMode = 'tcp' | 'http';
export type KeyType = 'rsa' | 'ecdsa';

export const PAIR_VARIANTS: Record<Extract<VariantId, `hap-${string}`>, { mode: PairMode; key: KeyType }> = {
  'hap-tcp-rsa': { mode: 'tcp', key: 'rsa' },
  'hap-http-rsa': { mode: 'http', key: 'rsa' },
  'hap-tcp-ecdsa': { mode: 'tcp', key: 'ecdsa' },
  'hap-http-ecdsa': { mode: 'http', key: 'ecdsa' },
};

const BASE: Record<PairMode, Record<KeyType, number>> = { tcp: { rsa: 10000, ecdsa: 30000 }, http: { rsa: 20000, ecdsa: 40000 } };
const OFFSET: Record<Proto, number> = { h1: 80, h2: 81, grpc: 51, bulk: 90, echo: 91 };
/** HTTP mode carries the HTTP protocols only; TCP mode everything */
const PROTOS: Record<PairMode, Proto[]> = { tcp: ['h1', 'h2', 'grpc', 'bulk', 'echo'], http: ['h1', 'h2', 'grpc'] };

/** The port a client dials on haproxy-a for (mode, key, protocol). */
export function pairPort(mode: PairMode, key: KeyType, proto: Proto): number | undefined {
  return PROTOS[mode].includes(proto) ? BASE[mode][key] + OFFSET[proto] : undefined;
}

/** haproxy-b's TLS port behind a haproxy-a port. */
export function tlsPort(aPort: number): number {
  return aPort + 1000;
}

export function allPairPorts(): { mode: PairMode; key: KeyType; proto: Proto; a: number; b: number }[] {
  const out = [];
  for (const mode of ['tcp', 'http'] as const)
    for (const key of ['rsa', 'ecdsa'] as const)
      for (const proto of PROTOS[mode]) {
        const a = pairPort(mode, key, proto)!;
        out.push({ mode, key, proto, a, b: tlsPort(a) });
      }
  return out;
}

/** Certificate files, relative to the lab dir (haproxy runs with it as cwd). */
export const certFile = (key: KeyType, who: 'ca' | 'a' | 'b', ext: 'pem' | 'key' | 'crt' = 'pem') =>
  path.join('certs', `${key}-${who}.${ext}`);

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`openssl ${args.join(' ')} failed: ${err.trim()}`))));
  });
}

/**
 * A CA, a server certificate for haproxy-b and a client certificate for haproxy-a, of one key
 * type, into <dir>/certs/. Each leaf's .pem holds certificate and key (haproxy's `crt`).
 */
export async function makeCertificates(dir: string, key: KeyType): Promise<void> {
  await mkdir(path.join(dir, 'certs'), { recursive: true });
  const newkey = key === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  const ca = (e: 'pem' | 'key') => certFile(key, 'ca', e);
  await openssl(
    [
      'req',
      '-x509',
      ...newkey,
      '-nodes',
      '-keyout',
      ca('key'),
      '-out',
      ca('pem'),
      '-days',
      '2',
      '-subj',
      `/CN=nodemesh-bench-${key}-ca`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  for (const [who, name, usage] of [
    ['b', 'haproxy-b', 'serverAuth'],
    ['a', 'haproxy-a', 'clientAuth'],
  ] as const) {
    const ext = path.join('certs', `${key}-${who}.ext`);
    await writeFile(
      path.join(dir, ext),
      `subjectAltName=DNS:${name}\nextendedKeyUsage=${usage}\nkeyUsage=critical,digitalSignature${key === 'rsa' ? ',keyEncipherment' : ''}\n`,
    );
    await openssl(
      [
        'req',
        ...newkey,
        '-nodes',
        '-keyout',
        certFile(key, who, 'key'),
        '-out',
        path.join('certs', `${key}-${who}.csr`),
        '-subj',
        `/CN=${name}`,
      ],
      dir,
    );
    await openssl(
      [
        'x509',
        '-req',
        '-in',
        path.join('certs', `${key}-${who}.csr`),
        '-CA',
        ca('pem'),
        '-CAkey',
        ca('key'),
        '-CAcreateserial',
        '-out',
        certFile(key, who, 'crt'),
        '-days',
        '2',
        '-extfile',
        ext,
      ],
      dir,
    );
    const pem =
      (await readFile(path.join(dir, certFile(key, who, 'crt')), 'utf8')) +
      (await readFile(path.join(dir, certFile(key, who, 'key')), 'utf8'));
    await writeFile(path.join(dir, certFile(key, who, 'pem')), pem);
  }
}

const GLOBAL = (threads: number) => `global
  nbthread ${threads}
  maxconn 5000
  ssl-server-verify required

defaults
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  maxconn 5000
  option dontlognull
`;

/** haproxy-a: plaintext in from the client, TLS with a client certificate out to haproxy-b. */
export function configA(threads: number): string {
  const parts = [GLOBAL(threads)];
  for (const p of allPairPorts()) {
    const name = `${p.mode}-${p.key}-${p.proto}`;
    const h2in = p.mode === 'http' && p.proto !== 'h1' ? ' proto h2' : '';
    // HTTP mode: the hop is HTTP/2 over TLS (ALPN h2), as HBONE's HTTP/2 CONNECT; TCP mode: bytes
    const alpn = p.mode === 'http' ? ' alpn h2' : '';
    parts.push(`frontend ${name}
  mode ${p.mode}
  bind :${p.a}${h2in}
  default_backend ${name}
backend ${name}
  mode ${p.mode}
  server b haproxy-b:${p.b} ssl verify required ca-file ${certFile(p.key, 'ca')} crt ${certFile(p.key, 'a')} sni str(haproxy-b) verifyhost haproxy-b${alpn}
`);
  }
  return parts.join('\n');
}

/** haproxy-b: TLS in (client certificate required and verified), plaintext to the backend. */
export function configB(threads: number): string {
  const parts = [GLOBAL(threads)];
  for (const p of allPairPorts()) {
    const name = `${p.mode}-${p.key}-${p.proto}`;
    const alpn = p.mode === 'http' ? ' alpn h2,http/1.1' : '';
    const h2out = p.mode === 'http' && p.proto !== 'h1' ? ' proto h2' : '';
    parts.push(`frontend ${name}
  mode ${p.mode}
  bind :${p.b} ssl crt ${certFile(p.key, 'b')} ca-file ${certFile(p.key, 'ca')} verify required${alpn}
  default_backend ${name}
backend ${name}
  mode ${p.mode}
  server s plain-backend:${BACKEND_PORTS[p.proto]}${h2out}
`);
  }
  return parts.join('\n');
}

export async function writePairFiles(dir: string, threads: number): Promise<void> {
  await makeCertificates(dir, 'rsa');
  await makeCertificates(dir, 'ecdsa');
  await writeFile(path.join(dir, 'haproxy-a.cfg'), configA(threads));
  await writeFile(path.join(dir, 'haproxy-b.cfg'), configB(threads));
}
