// HBONE in the lab, with the real CA: two nodes, a meshed client on node-a and a meshed
// echo server on node-b, mesh-wide STRICT (the fixture's PeerAuthentication in
// istio-system). curl through the mesh works; the server sees its own node proxy as the
// peer; a capture on node-b's link to the lab bridge shows TLS on 15008 and never the
// request's plaintext; both node proxies report the connection as mutual_tls with the
// SPIFFE principals. A meshed pod on the client's own node is served by the same-node path
// (no HBONE connection), with the same principals. A DENY that lands while the client's
// keep-alive connection is open through the pooled tunnel ends that connection's stream, not
// the tunnel.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { scrape, sumMetric } from '../../cli/prom-text.js';
import { labPerFile } from '../helpers/lab-per-file.js';
import { canRunPrivileged, run } from '../helpers/privileged.js';
import { packagePath } from '../../common/paths.js';
import { capture } from '../helpers/tcpdump.js';
import { eventually } from '../helpers/eventually.js';

const FIXTURE = packagePath('test', 'fixtures', 'hbone-lab');
const LAB = 't-hbone';
const CLIENT = 'spiffe://cluster.local/ns/shop/sa/client';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const NEAR = 'spiffe://cluster.local/ns/shop/sa/near';

interface Echo {
  pod: string;
  remote: string;
  path: string;
}

if (canRunPrivileged('HBONE in the lab')) {
  const lab = labPerFile({ dir: FIXTURE, name: LAB });

  async function curl(url: string): Promise<Echo> {
    return JSON.parse(await lab.output('shop/client', ['curl', '-sS', '--max-time', '10', url])) as Echo;
  }

  async function debugState(admin: string): Promise<{ hbone: { outbound?: { connections: number }; inboundConnections: number } }> {
    const res = await fetch(`http://${admin}/debug/state`);
    return (await res.json()) as { hbone: { outbound?: { connections: number }; inboundConnections: number } };
  }

  const ip = (remote: string) => remote.replace(/:\d+$/, '').replace(/^::ffff:/, '');

  /** The effective PeerAuthentication of a workload, as the control plane compiled it. */
  async function mtlsOf(uid: string): Promise<{ mtlsMode: string; peerAuthentications: string[] } | undefined> {
    const res = await fetch(`http://${lab.state.controlAddress!.admin}/debug/snapshot`);
    const snap = (await res.json()) as { security: { workloads: { workload: string; mtlsMode: string; peerAuthentications: string[] }[] } };
    return snap.security.workloads.find((w) => w.workload === uid);
  }

  test.serial('across nodes: curl works over HBONE, the server sees its client’s pod IP, and the link carries only TLS on 15008', async (t) => {
    const a = lab.node('node-a');
    const b = lab.node('node-b');
    const web = await mtlsOf('shop/web-1');
    t.is(web?.mtlsMode, 'STRICT', 'web-1 takes mutual TLS only');
    t.deepEqual(web?.peerAuthentications, ['istio-system/default'], 'by the mesh-wide PeerAuthentication');
    const marker = `nodemesh-plaintext-marker-${randomBytes(8).toString('hex')}`;
    const dir = await mkdtemp(path.join(tmpdir(), 'nodemesh-hbone-lab-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const pcap = path.join(dir, 'link.pcap');

    // node-b's veth to the lab bridge, root netns side: everything node-a sends node-b
    const tcpdump = await capture(b.vethRoot, ['host', a.ip, 'and', 'host', b.ip], pcap);
    let body: Echo;
    try {
      body = await curl(`http://web.shop/${marker}`);
    } finally {
      await tcpdump.stop();
    }
    t.is(body.pod, 'web-1');
    t.is(body.path, `/${marker}`);
    t.is(lab.pod('web-1').node, 'node-b');
    // the server's peer is its client's pod IP (node-b's proxy delivered from it, issue 10), not a node
    t.is(ip(body.remote), lab.pod('client').ip, `web-1 saw ${body.remote}; node-b is ${b.ip}/${b.podBridgeIp}`);

    // the request (and the echoed path in the response) never crossed the link in clear
    const raw = await readFile(pcap);
    t.true(raw.length > 0);
    t.false(raw.includes(Buffer.from(marker)), 'the marker appears in the capture: plaintext crossed the link between nodes');

    // every segment with a payload between the nodes is on 15008, and it is TLS (TLS 1.3
    // shows its encrypted records' outer type as tls.record.opaque_type)
    const fields = await run('tshark', [
      '-r',
      pcap,
      '-n',
      '-d',
      'tcp.port==15008,tls',
      '-Y',
      'tcp.len > 0',
      '-T',
      'fields',
      '-e',
      'tcp.srcport',
      '-e',
      'tcp.dstport',
      '-e',
      'tls.record.content_type',
      '-e',
      'tls.record.opaque_type',
    ]);
    t.is(fields.code, 0, fields.stderr);
    const rows = fields.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t'));
    t.true(rows.length > 0, 'the capture saw the tunnel');
    for (const [sport, dport] of rows)
      t.true(sport === '15008' || dport === '15008', `a payload between the nodes outside HBONE: ${sport} → ${dport}`);
    const contentTypes = new Set(rows.flatMap((r) => `${r[2] ?? ''},${r[3] ?? ''}`.split(',')).filter(Boolean));
    t.true(contentTypes.has('22'), `a TLS handshake on 15008 (content types seen: ${[...contentTypes]})`);
    t.true(contentTypes.has('23'), 'TLS application data on 15008');
    t.deepEqual(
      [...contentTypes].filter((c) => !['20', '21', '22', '23'].includes(c)),
      [],
      'only TLS records',
    );

    // both node proxies report mutual TLS with the workloads' SPIFFE identities
    const labels = {
      source_workload: 'client',
      destination_workload: 'web-1',
      source_principal: CLIENT,
      destination_principal: WEB,
      connection_security_policy: 'mutual_tls',
    };
    t.true(
      sumMetric(await scrape(a.agentAdmin), 'istio_tcp_connections_opened_total', { ...labels, reporter: 'source' }) >= 1,
      'node-a (source) reports mutual_tls',
    );
    t.true(
      sumMetric(await scrape(b.agentAdmin), 'istio_tcp_connections_opened_total', { ...labels, reporter: 'destination' }) >= 1,
      'node-b (destination) reports mutual_tls',
    );
    t.true((await debugState(b.agentAdmin)).hbone.inboundConnections >= 1, 'node-b holds the pooled HBONE connection');
  });

  test.serial('a second connection reuses the pooled HBONE connection', async (t) => {
    const a = lab.node('node-a');
    const before = (await debugState(a.agentAdmin)).hbone.outbound?.connections ?? 0;
    const bodies = await Promise.all([curl('http://web.shop/one'), curl('http://web.shop/two')]);
    t.deepEqual(
      bodies.map((b) => b.pod),
      ['web-1', 'web-1'],
    );
    t.is(
      (await debugState(a.agentAdmin)).hbone.outbound?.connections,
      Math.max(before, 1),
      'no new connection for the same (source, destination, node)',
    );
  });

  test.serial('same node: a meshed pod on the client’s node is served without HBONE, reported as mutual_tls', async (t) => {
    const a = lab.node('node-a');
    const labels = {
      reporter: 'destination',
      source_workload: 'client',
      destination_workload: 'near-1',
      source_principal: CLIENT,
      destination_principal: NEAR,
      connection_security_policy: 'mutual_tls',
    };
    const before = sumMetric(await scrape(a.agentAdmin), 'istio_tcp_connections_opened_total', labels);
    const body = await curl('http://near.shop/local');
    t.is(body.pod, 'near-1');
    t.is(ip(body.remote), lab.pod('client').ip, `near-1 saw ${body.remote}; node-a is ${a.ip}/${a.podBridgeIp}`);
    t.is(sumMetric(await scrape(a.agentAdmin), 'istio_tcp_connections_opened_total', labels) - before, 1);
    t.is((await debugState(a.agentAdmin)).hbone.inboundConnections, 0, 'node-a never tunnelled to itself');
  });

  test.serial('a DENY that lands while a keep-alive connection is open through the pooled HBONE tunnel: its next request is refused, the tunnel stays, and the denial is counted on node-b', async (t) => {
    const a = lab.node('node-a');
    const b = lab.node('node-b');
    const policy = 'shop/deny-client-late';
    const file = path.join(lab.state.configDir, 'deny-client-late.yaml');
    const dir = await mkdtemp(path.join(tmpdir(), 'nodemesh-hbone-lab-'));
    t.teardown(async () => {
      await rm(file, { force: true });
      await rm(dir, { recursive: true, force: true });
    });
    const started = path.join(dir, 'started');
    // one keep-alive connection from the client: a request every 50 ms on it until one is
    // not a 200 (or 30 s pass); the first 200 is signalled by a file
    const script = [
      "const http = require('node:http'); const fs = require('node:fs');",
      'const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });',
      'const statuses = []; const ports = new Set(); const end = Date.now() + 30000;',
      'const done = (error) => { console.log(JSON.stringify({ statuses, ports: [...ports], error })); process.exit(0); };',
      'function once() {',
      "  const req = http.get({ host: 'web.shop', port: 80, path: '/late', agent }, (res) => {",
      '    ports.add(req.socket.localPort); statuses.push(res.statusCode); res.resume();',
      `    if (statuses.length === 1) fs.writeFileSync(${JSON.stringify(started)}, '');`,
      "    res.on('end', () => (res.statusCode !== 200 || Date.now() > end ? done() : setTimeout(once, 50)));",
      '  });',
      "  req.on('error', (e) => done(e.code));",
      '}',
      'once();',
    ].join('\n');
    const client = lab.output('shop/client', [process.execPath, '-e', script]);
    await eventually(() => readFile(started).then(() => true, () => false), 20_000, 'the first answer on the keep-alive connection');
    const tunnels = (await debugState(a.agentAdmin)).hbone.outbound?.connections ?? 0;
    t.true(tunnels >= 1, 'the connection goes through a pooled HBONE tunnel');

    await writeFile(
      file,
      [
        'apiVersion: security.istio.io/v1',
        'kind: AuthorizationPolicy',
        'metadata: {name: deny-client-late, namespace: shop}',
        'spec:',
        '  selector: {matchLabels: {app: web}}',
        '  action: DENY',
        '  rules: [{from: [{source: {principals: ["cluster.local/ns/shop/sa/client"]}}]}]',
        '',
      ].join('\n'),
    );
    const r = JSON.parse(await client) as { statuses: number[]; ports: number[]; error?: string };
    t.log(`statuses ${r.statuses.slice(0, 3).join(',')}…${r.statuses.slice(-3).join(',')} (${r.statuses.length}), ${r.error ?? 'no error'}`);
    t.is(r.ports.length, 1, 'every answer came on the one keep-alive connection');
    t.is(r.statuses[0], 200);
    t.true(r.error !== undefined || r.statuses.at(-1) !== 200, 'after the policy landed, the open connection was refused');
    const m = await scrape(b.agentAdmin);
    const refused = sumMetric(m, 'nodemesh_agent_connections_closed_by_policy_total', { policy }) + sumMetric(m, 'nodemesh_agent_authorization_denials_total', { policy });
    t.true(refused > 0, 'node-b closed or refused it by that policy');
    t.is((await debugState(a.agentAdmin)).hbone.outbound?.connections, tunnels, "the policy ended the stream, not the tunnel other connections share");

    // a new connection is refused too; with the policy gone, served again
    const denied = await lab.exec('shop/client', ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', 'http://web.shop/new']);
    t.not(denied.stdout.trim(), '200');
    await rm(file);
    await eventually(async () => (await lab.exec('shop/client', ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', 'http://web.shop/again'])).stdout.trim() === '200', 20_000, 'served once the policy is gone');
  });
}
