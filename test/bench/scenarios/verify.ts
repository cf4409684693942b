// Before any number: every variant's path answers (HTTP/1.1, HTTP/2 and a grpc-js call), the
// nodemesh paths go over mutual TLS (proxies.ts verifyMesh), and the HAProxy pair's hop is
// verified mutual TLS: haproxy-b refuses a client without a certificate and one with a
// certificate of another CA, and accepts haproxy-a's — for each mode and key type, with curl
// from the client pod.
import path from 'node:path';
import type { BenchLab } from '../bench-lab.js';
import { allPairPorts, certFile, type KeyType } from '../haproxy-pair.js';
import { grpcCheck } from '../load-tools.js';
import { verifyMesh } from '../proxies.js';
import { scenario, type ScenarioResult } from '../scenario.js';
import { VARIANTS, type VariantId } from '../settings.js';

async function curl(lab: BenchLab, client: string, args: string[]): Promise<{ code: string; ok: boolean; err: string }> {
  try {
    const r = await lab.run(client, ['curl', '-sS', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_code}', ...args], 20_000);
    return { code: r.stdout.trim(), ok: true, err: '' };
  } catch (err) {
    return { code: '', ok: false, err: (err as Error).message.split('\n')[0]! };
  }
}

export function verifyScenario(lab: BenchLab, log: (m: string) => void): Promise<ScenarioResult> {
  return scenario(
    'verify',
    'Paths and mutual TLS',
    "One request of each protocol through every variant; the agents' mutual_tls metrics and the control plane's STRICT mode; haproxy-b refusing clients without a valid certificate (curl).",
    log,
    async (out) => {
      const evidence: string[] = [];
      for (const v of Object.keys(VARIANTS) as VariantId[]) {
        const client = VARIANTS[v].client;
        const h1 = lab.target(v, 'h1');
        const h2 = lab.target(v, 'h2');
        const r1 = await curl(lab, client, [`http://${h1.host}:${h1.port}/`]);
        const r2 = await curl(lab, client, ['--http2-prior-knowledge', `http://${h2.host}:${h2.port}/`]);
        if (r1.code !== '200' || r2.code !== '200') {
          out.errors.push(`${v}: HTTP/1.1 answered ${r1.code || r1.err}, HTTP/2 ${r2.code || r2.err}`);
          continue;
        }
        try {
          await grpcCheck(lab, v);
        } catch (err) {
          out.errors.push((err as Error).message);
          continue;
        }
        evidence.push(`${v}: HTTP/1.1, HTTP/2 and a grpc-js call answered`);
      }
      evidence.push(...(await verifyMesh(lab)));

      const cert = (k: KeyType, who: 'ca' | 'a', ext: 'pem' | 'key' | 'crt' = 'pem') => path.join(lab.dir, certFile(k, who, ext));
      const other = (k: KeyType): KeyType => (k === 'rsa' ? 'ecdsa' : 'rsa');
      for (const p of allPairPorts().filter((x) => x.proto === 'h1')) {
        const url = `https://haproxy-b:${p.b}/`;
        const base = ['--cacert', cert(p.key, 'ca'), url];
        const none = await curl(lab, 'plain/client', base);
        const foreign = await curl(lab, 'plain/client', [
          '--cert',
          cert(other(p.key), 'a', 'crt'),
          '--key',
          cert(other(p.key), 'a', 'key'),
          ...base,
        ]);
        const good = await curl(lab, 'plain/client', ['--cert', cert(p.key, 'a', 'crt'), '--key', cert(p.key, 'a', 'key'), ...base]);
        const what = `haproxy-b ${p.mode} mode ${p.key.toUpperCase()} (:${p.b})`;
        if (none.ok) out.errors.push(`${what} answered ${none.code} to a client without a certificate: the hop is not mutual TLS`);
        else if (foreign.ok) out.errors.push(`${what} answered ${foreign.code} to a certificate of another CA`);
        else if (good.code !== '200') out.errors.push(`${what} refused haproxy-a's certificate: ${good.err || good.code}`);
        else evidence.push(`${what}: no certificate refused, another CA's refused, haproxy-a's accepted (200)`);
      }
      out.data.evidence = evidence;
      for (const e of evidence) log(`  ✓ ${e}`);
    },
  );
}
