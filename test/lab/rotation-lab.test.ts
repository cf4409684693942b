// Certificate and root rotation under traffic, in the lab with the real CA: "rotation of a
// workload certificate mid-traffic drops no request; root rotation drops no request".
// Two nodes; a meshed client on node-a runs steady request loops (test/fixtures/rotation/
// steady-client.js: per Service port a keep-alive connection and a new connection per
// request, one request every 20 ms each) to web-1 on node-b behind the Service "web";
// port 80 is HTTP (the node proxy's L7 path), port 81 is declared TCP (each client
// connection is its own HBONE stream). A mesh-wide STRICT PeerAuthentication: nothing gets
// to web-1 in plaintext. The lab runs with 20 s workload certificates (renewed every ~10 s)
// and a 2 s spread for moving under a new root, so the file takes about half a minute.
import test, { type ExecutionContext } from 'ava';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { sniForPodIp } from '../../agent/hbone/protocol.js';
import type { HboneSessionInfo } from '../../agent/hbone/server.js';
import type { IdentityStatus } from '../../agent/identity/identity-manager.js';
import { scrape, sumMetric } from '../../cli/prom-text.js';
import { splitPemCertificates } from '../../control/api/x509-svid.js';
import { DEFAULT_CLI } from '../../deploy/lab/lab-commands.js';
import { labTrustBundleFile } from '../../deploy/lab/lab-credentials.js';
import { labPerFile } from '../helpers/lab-per-file.js';
import { canRunPrivileged, run } from '../helpers/privileged.js';
import { packagePath } from '../../common/paths.js';
import { eventually } from '../helpers/eventually.js';

const FIXTURE = packagePath('test', 'fixtures', 'rotation');
const LAB = 't-rotation';
const CLIENT = 'spiffe://cluster.local/ns/shop/sa/client';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const CERT_TTL_S = 20;
const ROOT_SPREAD_S = 2;
const ROOT_OVERLAP_S = 8;
const LOOPS = ['http-keepalive', 'http-fresh', 'tcp-keepalive', 'tcp-fresh'] as const;
/** far below the loops' 50 requests/s each, so a loaded CI machine still passes */
const MIN_REQUESTS_PER_S = 10;

interface LoopStats {
  started: boolean;
  ok: number;
  failed: number;
  warmupFailures: number;
  maxMs: number;
  connections: number;
}
interface ClientStats {
  loops: Record<string, LoopStats>;
  failures: { at: string; loop: string; error: string; ms: number }[];
}
/** What this file reads of an agent's /debug/state. */
interface AgentState {
  identities: IdentityStatus[];
  trustBundle: string[];
  hbone: { inbound: HboneSessionInfo[] };
}

/** Waits until `check` returns a value other than false/undefined; fails with `what` after `timeoutMs`. */
function until<T>(what: string, timeoutMs: number, check: () => Promise<T | false | undefined>): Promise<T> {
  return eventually(check, timeoutMs, what);
}

if (canRunPrivileged('certificate and root rotation in the lab')) {
  const lab = labPerFile(
    {
      dir: FIXTURE,
      name: LAB,
      env: { NODEMESH_CERT_TTL: `${CERT_TTL_S}s`, NODEMESH_ROOT_CHANGE_SPREAD: `${ROOT_SPREAD_S}s` },
    },
    async () => {
      // every loop has had its first good answer (the server may start after the client)
      await until('the client loops to get going', 20_000, async () => {
        const s = await clientStats();
        return LOOPS.every((l) => s.loops[l]?.started) && s;
      });
    },
  );

  /** Waits until every loop has 20 more good answers than now: traffic on what just changed. */
  async function moreTraffic(on: string): Promise<void> {
    const now = await clientStats();
    await until(`20 more answers on every loop with ${on}`, 20_000, async () => {
      const s = await clientStats();
      return LOOPS.every((l) => s.loops[l]!.ok - now.loops[l]!.ok >= 20);
    });
  }

  /** The steady client's counters (served on its own loopback). */
  async function clientStats(): Promise<ClientStats> {
    return JSON.parse(await lab.output('shop/client', ['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:9000/'])) as ClientStats;
  }

  async function agentState(nodeName: string): Promise<AgentState> {
    const res = await fetch(`http://${lab.node(nodeName).agentAdmin}/debug/state`, { signal: AbortSignal.timeout(5_000) });
    return (await res.json()) as AgentState;
  }

  async function identity(nodeName: string, spiffeId: string): Promise<Required<IdentityStatus>> {
    const id = (await agentState(nodeName)).identities.find((i) => i.spiffeId === spiffeId);
    if (!id?.serial || !id.notAfter || !id.root) throw new Error(`node ${nodeName} holds no certificate for ${spiffeId}`);
    return id as Required<IdentityStatus>;
  }

  /** The leaf node-b's 15008 presents for web-1 (openssl s_client, SNI naming the pod; no client certificate). */
  async function presentedByWeb(): Promise<X509Certificate> {
    const r = await run(
      'timeout',
      [
        '10',
        'openssl',
        's_client',
        '-connect',
        `${lab.node('node-b').ip}:15008`,
        '-servername',
        sniForPodIp(lab.pod('web-1').ip),
        '-alpn',
        'h2',
        '-tls1_3',
      ],
      undefined,
      '',
    );
    const pem = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/.exec(r.stdout)?.[0];
    if (!pem) throw new Error(`openssl s_client showed no server certificate (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
    return new X509Certificate(pem);
  }

  /** The serial node-b presents for web-1 now, bracketed by what its agent holds before and after (a renewal may fall in between). */
  async function presentedSerial(t: ExecutionContext): Promise<string> {
    const before = (await identity('node-b', WEB)).serial;
    const presented = (await presentedByWeb()).serialNumber;
    const after = (await identity('node-b', WEB)).serial;
    t.true([before, after].includes(presented), `node-b presents ${presented}; its agent holds ${before}, then ${after}`);
    return presented;
  }

  const mtlsLabels = {
    source_workload: 'client',
    destination_workload: 'web-1',
    source_principal: CLIENT,
    destination_principal: WEB,
    connection_security_policy: 'mutual_tls',
  };
  async function opened(): Promise<{ source: number; destination: number; plaintext: number }> {
    const [a, b] = await Promise.all([scrape(lab.node('node-a').agentAdmin), scrape(lab.node('node-b').agentAdmin)]);
    return {
      source: sumMetric(a, 'istio_tcp_connections_opened_total', { ...mtlsLabels, reporter: 'source' }),
      destination: sumMetric(b, 'istio_tcp_connections_opened_total', { ...mtlsLabels, reporter: 'destination' }),
      plaintext: sumMetric(b, 'istio_tcp_connections_opened_total', { destination_workload: 'web-1', connection_security_policy: 'none' }),
    };
  }

  /**
   * What every test asserts about the traffic between two readings: no loop failed a
   * request, each kept going, each keep-alive loop still rides the one connection it opened
   * at the start, and the new TCP connections were reported as mutual TLS on both nodes.
   */
  function assertTraffic(
    t: ExecutionContext,
    s0: ClientStats,
    s1: ClientStats,
    m0: Awaited<ReturnType<typeof opened>>,
    m1: Awaited<ReturnType<typeof opened>>,
    seconds: number,
  ): void {
    t.deepEqual(s1.failures, [], 'failed requests (all since the loops started)');
    for (const loop of LOOPS) {
      const a = s0.loops[loop]!;
      const b = s1.loops[loop]!;
      t.is(b.failed - a.failed, 0, `${loop}: failed requests`);
      t.true(b.ok - a.ok >= seconds * MIN_REQUESTS_PER_S, `${loop}: ${b.ok - a.ok} good answers in ${seconds.toFixed(1)} s`);
    }
    t.is(s1.loops['http-keepalive']!.connections, 1, 'the HTTP keep-alive loop still uses the connection it opened first');
    t.is(s1.loops['tcp-keepalive']!.connections, 1, 'the TCP keep-alive loop still uses the connection (and HBONE stream) it opened first');
    const fresh = s1.loops['tcp-fresh']!.ok - s0.loops['tcp-fresh']!.ok;
    t.true(
      m1.source - m0.source >= fresh * 0.9,
      `node-a (source) reported ${m1.source - m0.source} new mutual_tls connections to web-1 for ${fresh} new TCP connections`,
    );
    t.true(
      m1.destination - m0.destination >= fresh * 0.9,
      `node-b (destination) reported ${m1.destination - m0.destination} new mutual_tls connections`,
    );
    t.is(m1.plaintext, 0, 'nothing reached web-1 in plaintext');
  }

  test.serial(
    'rotation of a workload certificate mid-traffic drops no request: both ends renew, new HBONE connections use the new certificates',
    async (t) => {
      const snap = (await (await fetch(`http://${lab.state.controlAddress!.admin}/debug/snapshot`)).json()) as {
        security: { workloads: { workload: string; mtlsMode: string }[] };
      };
      t.is(
        snap.security.workloads.find((w) => w.workload === 'shop/web-1')?.mtlsMode,
        'STRICT',
        'web-1 takes mutual TLS only (mesh-wide STRICT)',
      );
      const s0 = await clientStats();
      const m0 = await opened();
      const started = Date.now();
      const client0 = await identity('node-a', CLIENT);
      const web0 = await identity('node-b', WEB);
      t.true(
        Date.parse(client0.notAfter) - Date.now() <= CERT_TTL_S * 1000,
        `the lab's certificates live ${CERT_TTL_S} s (client's expires ${client0.notAfter})`,
      );

      // both certificates are renewed (at half-life, ~10 s) while the loops run
      const [client1, web1] = await until('both certificates to be renewed', CERT_TTL_S * 1000 + 10_000, async () => {
        const [c, w] = await Promise.all([identity('node-a', CLIENT), identity('node-b', WEB)]);
        return c.serial !== client0.serial && w.serial !== web0.serial && ([c, w] as const);
      });
      t.true(Date.parse(client1.notAfter) > Date.parse(client0.notAfter), 'the client holds a later certificate');
      t.true(Date.parse(web1.notAfter) > Date.parse(web0.notAfter), 'web holds a later certificate');
      t.true(
        Date.now() < Date.parse(client0.notAfter) && Date.now() < Date.parse(web0.notAfter),
        'renewed before the old certificates expired',
      );

      // a new HBONE connection from node-a carries the renewed client certificate, and node-b
      // now presents web's renewed certificate to new connections
      const session = await until('node-b to accept an HBONE connection with the renewed client certificate', 10_000, async () => {
        const [c, b] = await Promise.all([identity('node-a', CLIENT), agentState('node-b')]);
        return c.serial !== client0.serial && b.hbone.inbound.find((s) => s.principal === CLIENT && s.peerSerial === c.serial);
      });
      t.is(session.presented, WEB);
      const presented = await presentedSerial(t);
      t.not(presented, web0.serial, 'node-b presents a renewed certificate for web-1');

      await moreTraffic('the new certificates');
      const m1 = await opened();
      const s1 = await clientStats();
      assertTraffic(t, s0, s1, m0, m1, (Date.now() - started) / 1000);
    },
  );

  test.serial(
    'root rotation drops no request: both agents move under the new root during the overlap, then the old root is dropped',
    async (t) => {
      const s0 = await clientStats();
      const m0 = await opened();
      const started = Date.now();
      const [a0, b0] = await Promise.all([agentState('node-a'), agentState('node-b')]);
      t.is(a0.trustBundle.length, 1, 'one root before the rotation');
      t.deepEqual(b0.trustBundle, a0.trustBundle);
      const oldRoot = a0.trustBundle[0]!;

      // what an operator runs
      const r = await run(process.execPath, [DEFAULT_CLI, 'ca', 'rotate', '--name', LAB, '--overlap', `${ROOT_OVERLAP_S}s`]);
      t.is(r.code, 0, r.stderr);
      const retireAt = Date.parse(/both are trusted until (\S+);/.exec(r.stdout)?.[1] ?? '');
      t.true(Number.isFinite(retireAt), `the old root's end in: ${r.stdout}`);
      const pems = splitPemCertificates(await readFile(labTrustBundleFile(lab.state.stateDir), 'utf8'));
      t.is(pems.length, 2, 'the CA trusts both roots during the overlap');
      const newRootPem = pems[1]!;
      const newRoot = new X509Certificate(newRootPem).fingerprint256;
      t.is(new X509Certificate(pems[0]!).fingerprint256, oldRoot);

      // both agents get both roots, then renew under the new one (within the 2 s spread),
      // all while the old root is still trusted
      const moved = await until('both agents to hold certificates under the new root', ROOT_OVERLAP_S * 1000, async () => {
        const states = await Promise.all([agentState('node-a'), agentState('node-b')]);
        return states.every((s) => s.identities.length > 0 && s.identities.every((i) => i.root === newRoot)) && states;
      });
      for (const s of moved) t.deepEqual(s.trustBundle, [oldRoot, newRoot], 'moved during the overlap: both roots trusted, oldest first');
      const clientNew = moved[0].identities.find((i) => i.spiffeId === CLIENT)!;

      // node-b presents web's certificate under the new root; node-a's new HBONE
      // connections present the client's
      const leaf = await presentedByWeb();
      t.true(leaf.verify(new X509Certificate(newRootPem).publicKey), 'the certificate node-b presents is signed by the new root');
      await until('node-b to accept an HBONE connection with a client certificate under the new root', 10_000, async () => {
        const [c, b] = await Promise.all([identity('node-a', CLIENT), agentState('node-b')]);
        return c.root === newRoot && b.hbone.inbound.some((s) => s.principal === CLIENT && s.peerSerial === c.serial);
      });
      t.truthy(clientNew.serial);

      // the overlap ends: the old root leaves both bundles; new connections keep working with
      // the new root alone (the old HBONE connection of the keep-alive loop carries on)
      await until('the old root to be dropped on both agents', ROOT_OVERLAP_S * 1000 + 10_000, async () => {
        const states = await Promise.all([agentState('node-a'), agentState('node-b')]);
        return states.every((s) => s.trustBundle.length === 1 && s.trustBundle[0] === newRoot);
      });
      t.true(Date.now() >= retireAt, 'not before the end of the overlap');
      // the bundle is part of an HBONE connection's credentials: node-a dials anew
      await until('a new HBONE connection after the old root was dropped', 10_000, async () => {
        const b = await agentState('node-b');
        return b.hbone.inbound.some((s) => s.principal === CLIENT && Date.parse(s.openedAt) >= retireAt);
      });
      await moreTraffic('the new root alone');
      const m1 = await opened();
      const s1 = await clientStats();
      assertTraffic(t, s0, s1, m0, m1, (Date.now() - started) / 1000);
    },
  );
}
