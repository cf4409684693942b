// Inbound capture, end to end in the lab: plaintext that reaches a meshed pod from anywhere
// but its own node (a pod that is not meshed, on another node or on the same bridge) is
// taken in the kernel into the node proxy's 15006 listener, which delivers it from the
// client's own address (the pod sees its real client, issue 10), and the proxy reports the
// connection as inbound plaintext.
// The node's own traffic (kubelet probes) and traffic to pods that are not meshed are never
// captured; a stopped or crashed agent leaves the capture in place (fail closed), and
// `nodemesh agent cleanup` removes every tc filter, rule, route and pin.
import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { scrape, sumMetric } from '../../cli/prom-text.js';
import { labPerFile } from '../helpers/lab-per-file.js';
import { canRunPrivileged, run } from '../helpers/privileged.js';
import { packagePath } from '../../common/paths.js';
import { eventually } from '../helpers/eventually.js';

const FIXTURE = packagePath('test', 'fixtures', 'inbound-capture');
const LAB = 't-inbound';

interface Curl {
  code: number;
  stderr: string;
  /** what the echo server answered */
  body: { pod: string; remote: string; path: string } | undefined;
  /** the client's own end of the connection, as curl reports it */
  local: string;
}

interface TapEvent {
  event: 'open' | 'close';
  direction?: string;
  security?: string;
  source: string;
  originalDestination: string;
  responseFlags: string;
  receivedBytes: number;
}

if (canRunPrivileged('inbound capture')) {
  const lab = labPerFile({ dir: FIXTURE, name: LAB });

  async function curl(target: string, url: string): Promise<Curl> {
    const r = await lab.exec(target, ['curl', '-sS', '--max-time', '5', '-w', '\n%{local_ip}:%{local_port}', url]);
    const cut = r.stdout.lastIndexOf('\n');
    const text = r.stdout.slice(0, Math.max(cut, 0));
    let body: Curl['body'];
    try {
      body = JSON.parse(text) as Curl['body'];
    } catch {
      body = undefined;
    }
    return { code: r.code, stderr: r.stderr, body, local: r.stdout.slice(cut + 1).trim() };
  }

  const ipOf = (hostport: string) => hostport.replace(/^::ffff:/, '').replace(/:\d+$/, '');

  /** The connections a node proxy reports, from its /debug/tap stream. */
  function tap(admin: string) {
    const events: TapEvent[] = [];
    let req: http.ClientRequest;
    const ready = new Promise<void>((resolve, reject) => {
      req = http.get(`http://${admin}/debug/tap`, (res) => {
        res.setEncoding('utf8');
        let buf = '';
        res.on('data', (chunk: string) => {
          buf += chunk;
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            events.push(JSON.parse(buf.slice(0, i)) as TapEvent);
            buf = buf.slice(i + 1);
          }
        });
        resolve();
      });
      req.on('error', reject);
    });
    return {
      events,
      ready,
      stop: () => req.destroy(),
      /** The first event matching `pred` within `ms` (undefined: none came in that window). */
      waitFor(pred: (e: TapEvent) => boolean, ms = 10_000): Promise<TapEvent | undefined> {
        return eventually(() => events.find(pred), ms, 'a tap event', 50).catch(() => undefined);
      },
    };
  }

  const inboundFrom = (ip: string) => (e: TapEvent) => e.direction === 'inbound' && e.event === 'close' && ipOf(e.source) === ip;

  /** istio_tcp_connections_opened_total as node-a reports it for `workload`, as destination. */
  async function plaintextOpened(workload: string, flags?: string): Promise<number> {
    return sumMetric(await scrape(lab.node('node-a').agentAdmin), 'istio_tcp_connections_opened_total', {
      reporter: 'destination',
      destination_workload: workload,
      connection_security_policy: 'none',
      ...(flags ? { response_flags: flags } : {}),
    });
  }

  /** A captured connection: the pod saw its client's address, the proxy reported it as inbound plaintext. */
  async function assertCaptured(t: ExecutionContext, client: string) {
    const server = lab.pod('server');
    const nodeA = lab.node('node-a');
    const before = await plaintextOpened('server');
    const events = tap(nodeA.agentAdmin);
    await events.ready;
    try {
      const res = await curl(`shop/${client}`, `http://${server.ip}:8080/captured`);
      t.is(res.code, 0, res.stderr);
      t.is(res.body?.pod, 'server');
      t.is(res.body?.path, '/captured');
      // the pod's peer is the client's address (the proxy delivered transparently), yet
      // not the client's socket: the proxy's, from its own port
      t.is(ipOf(res.body!.remote), lab.pod(client).ip, `the pod saw ${res.body?.remote}; node-a's proxy is ${nodeA.podBridgeIp}`);
      t.not(res.body!.remote.replace(/^::ffff:/, ''), res.local, 'the pod saw the client socket itself: the connection was not captured');

      const e = await events.waitFor(inboundFrom(lab.pod(client).ip));
      t.truthy(e, `node-a's tap shows no inbound connection from ${client}: ${JSON.stringify(events.events)}`);
      t.is(e?.originalDestination, `${server.ip}:8080`, 'the proxy read the dialled address from its socket');
      t.is(e?.security, 'none');
      t.is(e?.responseFlags, '-');
      t.true((e?.receivedBytes ?? 0) > 0);
      t.is((await plaintextOpened('server')) - before, 1, 'istio_tcp_connections_opened_total{reporter="destination",connection_security_policy="none"}');
    } finally {
      events.stop();
    }
  }

  /** Not captured: the server saw the client's very socket, and node-a's proxy saw nothing. */
  async function assertDirect(t: ExecutionContext, target: string, server: string) {
    const events = tap(lab.node('node-a').agentAdmin);
    await events.ready;
    try {
      const res = await curl(target, `http://${lab.pod(server).ip}:8080/direct`);
      t.is(res.code, 0, res.stderr);
      t.is(res.body?.pod, server);
      t.is(res.body?.remote.replace(/^::ffff:/, ''), res.local, 'the pod saw the client itself');
      t.is(await events.waitFor((e) => e.direction === 'inbound' && e.originalDestination.startsWith(`${lab.pod(server).ip}:`), 500), undefined);
    } finally {
      events.stop();
    }
  }

  test.serial('each node captures its own meshed pods only, on its uplink, its pod bridge and every bridge port', async (t) => {
    const debug = async (n: string) =>
      ((await (await fetch(`http://${lab.node(n).agentAdmin}/debug/state`)).json()) as { inboundCapture: { pods: string[]; links: string[] } }).inboundCapture;
    const a = await debug('node-a');
    t.deepEqual(a.pods, [lab.pod('server').ip, lab.pod('strict-server').ip].sort());
    const ports = lab.state.pods.filter((p) => p.node === 'node-a').map((p) => `${p.vethNode}/egress`);
    t.deepEqual(a.links.sort(), ['cbr0/ingress', 'eth0/ingress', ...ports].sort());
    t.deepEqual((await debug('node-b')).pods, [lab.pod('far-server').ip]);
  });

  test.serial('a pod that is not meshed, on another node, dialling a meshed pod is captured into its node proxy', async (t) => {
    await assertCaptured(t, 'remote');
  });

  test.serial('a pod that is not meshed, on the same bridge, dialling a meshed pod is captured into its node proxy', async (t) => {
    await assertCaptured(t, 'neighbour');
  });

  test.serial('the node itself (kubelet probes) reaches a meshed pod directly, not through the proxy', async (t) => {
    await assertDirect(t, 'node/node-a', 'server');
  });

  test.serial('a pod that is not meshed is never captured, from another node or the same bridge', async (t) => {
    await assertDirect(t, 'shop/remote', 'plain-server');
    await assertDirect(t, 'shop/neighbour', 'plain-server');
  });

  test.serial('a pod that is not meshed connecting straight to a STRICT pod is refused; to a PERMISSIVE pod it is served; the node still reaches both', async (t) => {
    const strict = lab.pod('strict-server');
    const denied = await plaintextOpened('strict-server', 'DENY');
    for (const client of ['remote', 'neighbour']) {
      const res = await curl(`shop/${client}`, `http://${strict.ip}:8080/`);
      t.not(res.code, 0, `${client} reached the STRICT pod: ${JSON.stringify(res.body)}`);
      t.is(res.body, undefined);
    }
    t.is((await plaintextOpened('strict-server', 'DENY')) - denied, 2, 'both refusals reported with response_flags DENY');
    const permissive = await curl('shop/remote', `http://${lab.pod('server').ip}:8080/`);
    t.is(permissive.code, 0, permissive.stderr);
    t.is(permissive.body?.pod, 'server');
    await assertDirect(t, 'node/node-a', 'strict-server'); // kubelet probes keep working
  });

  test.serial("a crashed agent's capture stays in place and fails closed; `nodemesh agent cleanup` removes it", async (t) => {
    const nodeB = lab.node('node-b');
    const agent = lab.state.processes.find((p) => p.role === 'agent' && p.name === 'node-b')!;
    process.kill(-agent.pid, 'SIGKILL');
    await eventually(() => !alive(agent.pid), 10_000, 'the killed agent gone', 50);
    const inNode = (cmd: string[]) => run('ip', ['netns', 'exec', nodeB.netns, ...cmd]);
    t.regex((await inNode(['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout, /nm_inbound/, 'the filter outlives the agent');
    t.regex((await inNode(['ip', 'rule', 'show'])).stdout, /fwmark 0x111\/0xfff lookup 15006/);
    // no proxy listening: a new connection to a meshed pod is dropped, never delivered around it
    const dropped = await lab.exec('shop/remote', ['curl', '-sS', '--max-time', '2', `http://${lab.pod('far-server').ip}:8080/`]);
    t.is(dropped.code, 28, `expected a timeout: ${dropped.stdout}${dropped.stderr}`);

    // what an operator runs on the node (in its netns): `nodemesh agent cleanup`
    const cli = packagePath('bin', 'nodemesh.js');
    const r = await run('nsenter', [`--net=/run/netns/${nodeB.netns}`, '--', process.execPath, cli, 'agent', 'cleanup', '--pin-dir', nodeB.pinDir]);
    t.is(r.code, 0, r.stderr);
    const ports = lab.state.pods.filter((p) => p.node === 'node-b').map((p) => `${p.vethNode}/egress`);
    // eth0 and cbr0 ingress, and every pod veth's egress
    t.regex(r.stdout, new RegExp(`removed: ${ports.length + 2} tc filters, 1 policy rules, 1 routes, `));
    t.is((await inNode(['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout.trim(), '');
    t.false((await inNode(['tc', 'qdisc', 'show'])).stdout.includes('clsact'));
    t.false((await inNode(['ip', 'rule', 'show'])).stdout.includes('15006'));
    t.false(existsSync(nodeB.pinDir), `${nodeB.pinDir} is left`);
  });

  // SIGTERM used to remove the capture, which let plaintext reach STRICT pods whenever an
  // agent was stopped (issue 8): now only `nodemesh agent cleanup` (an uninstall) removes it
  test.serial("node-a's agent on SIGTERM leaves the capture in place (STRICT still refused); `nodemesh agent cleanup` removes its tc filters, clsact qdiscs, policy rule, route and pins; pods are then reached directly", async (t) => {
    const nodeA = lab.node('node-a');
    const agent = lab.state.processes.find((p) => p.role === 'agent' && p.name === 'node-a')!;
    process.kill(-agent.pid, 'SIGTERM');
    await eventually(() => !alive(agent.pid), 10_000, 'the agent to exit on SIGTERM', 100).catch(() => {});
    t.false(alive(agent.pid), 'the agent did not exit on SIGTERM');

    const inNode = (cmd: string[]) => run('ip', ['netns', 'exec', nodeA.netns, ...cmd]);
    t.regex((await inNode(['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout, /nm_inbound/, 'the filter outlives the stopped agent');
    t.true(existsSync(nodeA.pinDir), 'the pins outlive the stopped agent');
    const refused = await lab.exec('shop/remote', ['curl', '-sS', '--max-time', '2', `http://${lab.pod('strict-server').ip}:8080/`]);
    t.is(refused.code, 28, `the STRICT pod must stay out of reach in plaintext: ${refused.stdout}${refused.stderr}`);

    const cli = packagePath('bin', 'nodemesh.js');
    const r = await run('nsenter', [`--net=/run/netns/${nodeA.netns}`, '--', process.execPath, cli, 'agent', 'cleanup', '--pin-dir', nodeA.pinDir, '--state-dir', nodeA.agentStateDir]);
    t.is(r.code, 0, r.stderr);
    const links = (JSON.parse((await inNode(['ip', '-j', 'link', 'show'])).stdout) as Array<{ ifname: string }>).map((l) => l.ifname);
    t.true(links.includes('eth0') && links.includes('cbr0'));
    for (const l of links) {
      for (const dir of ['ingress', 'egress']) t.is((await inNode(['tc', 'filter', 'show', 'dev', l, dir])).stdout.trim(), '', `${l} ${dir}`);
      t.false((await inNode(['tc', 'qdisc', 'show', 'dev', l])).stdout.includes('clsact'), `clsact left on ${l}`);
    }
    t.false((await inNode(['ip', 'rule', 'show'])).stdout.includes('15006'));
    t.is((await inNode(['ip', 'route', 'show', 'table', '15006'])).stdout.trim(), '');
    t.false(existsSync(nodeA.pinDir), `${nodeA.pinDir} is left`);

    // the mesh is gone from node-a: a client reaches the pod as before it was meshed
    const res = await curl('shop/remote', `http://${lab.pod('server').ip}:8080/`);
    t.is(res.code, 0, res.stderr);
    t.is(ipOf(res.body!.remote), lab.pod('remote').ip);
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
