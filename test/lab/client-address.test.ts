// Issue 10, the last two "How it is shown" items, end to end in the lab:
// - a backend reached through the mesh logs its client's pod IP, from the same node (the
//   same-node path) and across nodes (HBONE), not a node address: the proxy delivers from
//   the client's address (IP_TRANSPARENT) and the inbound programs bring the pod's answers
//   back to that socket;
// - where the address cannot be kept (an HTTP server outside the mesh: no node proxy of its
//   delivers to it), x-forwarded-for carries it;
// - a kubelet-style probe from the node (httpGet and tcpSocket, from the node's own stack)
//   reaches a STRICT pod, while a pod that is not meshed is refused in plaintext and a meshed
//   one still goes through mutual TLS.
import test, { type ExecutionContext } from 'ava';
import { readFile } from 'node:fs/promises';
import { scrape, sumMetric } from '../../cli/prom-text.js';
import { labPerFile } from '../helpers/lab-per-file.js';
import { canRunPrivileged, run } from '../helpers/privileged.js';
import { packagePath } from '../../common/paths.js';
import { eventually } from '../helpers/eventually.js';

const FIXTURE = packagePath('test', 'fixtures', 'client-address');
const LAB = 'pr-client';

// one TCP connection to host:port from inside a pod: prints what the backend answered
const TCP_CLIENT = `
const s = require('node:net').connect(Number(process.argv[2]), process.argv[1]);
let out = '';
s.setEncoding('utf8');
s.on('data', (d) => (out += d));
s.on('end', () => { process.stdout.write(JSON.stringify({ answer: out.trim(), local: s.localAddress + ':' + s.localPort })); });
s.on('error', (e) => { process.stderr.write(e.message); process.exit(1); });
setTimeout(() => { process.stderr.write('no answer in 5 s'); process.exit(2); }, 5000).unref();
`;

interface Accept {
  event: 'accept';
  remoteAddress: string;
  remotePort: number;
}

if (canRunPrivileged('client address and kubelet probes')) {
  const lab = labPerFile({ dir: FIXTURE, name: LAB });
  const unmapped = (a: string) => a.replace(/^::ffff:/, '');
  const ipOf = (hostport: string) => unmapped(hostport).replace(/:\d+$/, '');

  async function tcp(from: string, host: string, port: number): Promise<{ answer: string; local: string }> {
    return JSON.parse(await lab.output(from, ['node', '-e', TCP_CLIENT, host, String(port)])) as { answer: string; local: string };
  }

  /** The backend's log lines: every connection it accepted, as it saw them. */
  async function accepted(): Promise<Accept[]> {
    const log = lab.pod('who').containers[0]!.log;
    return (await readFile(log, 'utf8'))
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Accept | { event: string })
      .filter((e): e is Accept => e.event === 'accept');
  }

  /** istio_tcp_connections_opened_total at node-a, reporter="destination", for `labels`. */
  async function opened(labels: Record<string, string>): Promise<number> {
    return sumMetric(await scrape(lab.node('node-a').agentAdmin), 'istio_tcp_connections_opened_total', { reporter: 'destination', ...labels });
  }

  /** A meshed client's connection to the TCP backend's Service: logged with the client's own pod IP, over mutual TLS. */
  async function assertClientSeen(t: ExecutionContext, client: string) {
    const mtls = { source_workload: client, destination_workload: 'who', connection_security_policy: 'mutual_tls' };
    const before = await opened(mtls);
    const seenBefore = (await accepted()).length;
    const r = await tcp(`shop/${client}`, 'who.shop', 9000);
    const clientIp = lab.pod(client).ip;
    t.is(ipOf(r.answer), clientIp, `who answered ${r.answer}; ${client} is ${clientIp}, node-a ${lab.node('node-a').ip}/${lab.node('node-a').podBridgeIp}`);
    // the backend's own log says the same (its remoteAddress, as any server would log it)
    const logged = await eventually(async () => ((await accepted()).length > seenBefore ? (await accepted()).at(-1) : undefined), 20_000, "who's log line");
    t.is(unmapped(logged.remoteAddress), clientIp);
    // through the mesh: redirected to the ClusterIP's proxy (the client's socket points elsewhere), over mTLS
    t.not(r.answer, r.local, 'the backend saw the client socket itself: the mesh was bypassed');
    t.is((await opened(mtls)) - before, 1, 'istio_tcp_connections_opened_total{reporter="destination",connection_security_policy="mutual_tls"}');
  }

  test.serial('a TCP backend reached through the mesh logs its client’s pod IP: from a pod on its own node (same-node path)', async (t) => {
    await assertClientSeen(t, 'client-a');
  });

  test.serial('a TCP backend reached through the mesh logs its client’s pod IP: from a pod on another node (HBONE)', async (t) => {
    await assertClientSeen(t, 'client-b');
    t.true((await (await fetch(`http://${lab.node('node-a').agentAdmin}/debug/state`)).json() as { hbone: { inboundConnections: number } }).hbone.inboundConnections > 0, 'node-a took an HBONE connection');
  });

  test.serial('a pod that is not meshed, captured in plaintext, is seen with its own address too (PERMISSIVE backend)', async (t) => {
    for (const client of ['plain-a', 'plain-b']) {
      const r = await tcp(`shop/${client}`, lab.pod('who').ip, 9000);
      t.is(ipOf(r.answer), lab.pod(client).ip, `who answered ${r.answer} to ${client}`);
      t.not(unmapped(r.answer), r.local, `${client}'s connection was not captured`);
    }
  });

  test.serial('a pod calling itself through its Service is served, from the node’s address (its own would be a martian to its kernel)', async (t) => {
    const r = await tcp('shop/who', 'who.shop', 9000);
    t.is(ipOf(r.answer), lab.node('node-a').podBridgeIp, `who saw itself as ${r.answer}`);
  });

  test.serial('an HTTP server outside the mesh sees the node’s address, and its client’s pod IP in x-forwarded-for', async (t) => {
    const r = JSON.parse(await lab.output('shop/client-a', ['curl', '-sS', '--max-time', '5', '-H', 'x-forwarded-for: 192.0.2.7', 'http://plain-web.shop/'])) as { remote: string; xff: string | null };
    const nodeA = lab.node('node-a');
    t.true([nodeA.ip, nodeA.podBridgeIp].includes(ipOf(r.remote)), `plain-web saw ${r.remote}: not node-a`);
    // appended to what the client sent, as Envoy appends the remote address
    t.is(r.xff, `192.0.2.7, ${lab.pod('client-a').ip}`);
  });

  test.serial('kubelet probes from the node reach a STRICT pod: httpGet and tcpSocket, straight from the node’s own address', async (t) => {
    const web = lab.pod('strict-web');
    const nodeA = lab.node('node-a');
    const plaintext = await opened({ destination_workload: 'strict-web', connection_security_policy: 'none' });
    // httpGet: what the kubelet does, from the node's stack; the pod sees the node's address on its bridge, unproxied
    const http = await lab.exec('node/node-a', ['curl', '-sS', '--max-time', '5', '-w', '\n%{http_code} %{local_ip}:%{local_port}', `http://${web.ip}:8080/healthz`]);
    t.is(http.code, 0, http.stderr);
    const [body, status] = [http.stdout.slice(0, http.stdout.lastIndexOf('\n')), http.stdout.slice(http.stdout.lastIndexOf('\n') + 1)];
    const [code, local] = status.split(' ');
    t.is(code, '200');
    const echo = JSON.parse(body) as { pod: string; remote: string };
    t.is(echo.pod, 'strict-web');
    t.is(unmapped(echo.remote), local, 'the probe reached the pod itself, not through the proxy');
    t.is(ipOf(echo.remote), nodeA.podBridgeIp);
    // tcpSocket: a bare connect and close
    const tcpProbe = await lab.exec('node/node-a', ['bash', '-c', `exec 3<>/dev/tcp/${web.ip}/8080 && exec 3>&-`]);
    t.is(tcpProbe.code, 0, tcpProbe.stderr);
    t.is((await opened({ destination_workload: 'strict-web', connection_security_policy: 'none' })) - plaintext, 0, 'the proxy never saw the probes');
  });

  test.serial('…while a pod that is not meshed is refused in plaintext (same node and another node), and a meshed pod still goes through mutual TLS', async (t) => {
    const web = lab.pod('strict-web');
    const denied = await opened({ destination_workload: 'strict-web', connection_security_policy: 'none', response_flags: 'DENY' });
    for (const client of ['plain-a', 'plain-b']) {
      const r = await lab.exec(`shop/${client}`, ['curl', '-sS', '--max-time', '5', `http://${web.ip}:8080/`]);
      t.not(r.code, 0, `${client} reached the STRICT pod in plaintext: ${r.stdout}`);
    }
    t.is((await opened({ destination_workload: 'strict-web', connection_security_policy: 'none', response_flags: 'DENY' })) - denied, 2);
    for (const client of ['client-a', 'client-b']) {
      const mtls = { source_workload: client, destination_workload: 'strict-web', connection_security_policy: 'mutual_tls' };
      const before = await opened(mtls);
      const r = await lab.output(`shop/${client}`, ['curl', '-sS', '--max-time', '5', 'http://strict-web.shop/']);
      const echo = JSON.parse(r) as { pod: string; remote: string };
      t.is(echo.pod, 'strict-web');
      t.is(ipOf(echo.remote), lab.pod(client).ip, `strict-web saw ${echo.remote}`);
      t.is((await opened(mtls)) - before, 1, `${client}: istio_tcp_connections_opened_total{connection_security_policy="mutual_tls"}`);
    }
  });

  test.serial('transparent delivery adds no rule, route or mark: the node keeps the one capture rule and route', async (t) => {
    const nodeA = lab.node('node-a');
    const inNode = (cmd: string[]) => run('ip', ['netns', 'exec', nodeA.netns, ...cmd]);
    const rules = (await inNode(['ip', '-4', 'rule', 'show'])).stdout.trim().split('\n');
    t.deepEqual(rules.filter((r) => !/lookup (local|main|default)\s*$/.test(r)), ['15006:\tfrom all fwmark 0x111/0xfff lookup 15006']);
    t.is((await inNode(['ip', 'route', 'show', 'table', '15006'])).stdout.trim(), 'local default dev lo scope host');
  });
}
