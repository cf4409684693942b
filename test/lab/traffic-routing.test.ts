// Traffic splitting in the lab, end to end: a meshed client pod's plain HTTP requests to a
// ClusterIP are split per request by its node proxy as the VirtualService says, and a change
// of the VirtualService file moves every new request within a second. Opaque TCP keeps the
// L4 path with the L4 policies (TCP routes, maxConnections), and a server-first protocol on
// an undeclared port survives protocol sniffing. Real kernel redirect, control plane, agents
// (HBONE between them when the lab has identities), real backends.
import test from 'ava';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { labPerFile, type Lab } from '../helpers/lab-per-file.js';
import { scrape, sumMetric } from '../../cli/prom-text.js';
import { canRunPrivileged } from '../helpers/privileged.js';
import { eventually } from '../helpers/eventually.js';
import { packagePath } from '../../common/paths.js';

const FIXTURE = packagePath('test', 'fixtures', 'traffic-routing');
const CLIENT = packagePath('test', 'fixtures', 'traffic', 'client.js');
const TCP_CLIENT = packagePath('test', 'fixtures', 'traffic', 'tcp-client.js');
const LAB = 't-split';

async function client<T>(lab: Lab, args: string[]): Promise<T> {
  return JSON.parse(await lab.output('shop/client', ['node', CLIENT, ...args])) as T;
}

/** Replaces a config file the way an editor or `kubectl apply` would: whole, at once. */
async function rewriteConfig(lab: Lab, file: string, text: string): Promise<void> {
  const tmp = path.join(lab.state.configDir, `.${file}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, path.join(lab.state.configDir, file));
}

if (canRunPrivileged('traffic routing')) {
  const lab = labPerFile({ dir: FIXTURE, name: LAB });

  test.serial('a 90/10 VirtualService split over 2,000 requests lands within statistical tolerance', async (t) => {
    const r = await client<{ total: number; status: Record<string, number>; pods: Record<string, number> }>(lab, ['load', 'http://web.shop/', '2000', '8']);
    t.deepEqual(r.status, { '200': 2000 });
    const v2 = r.pods['web-v2'] ?? 0;
    // binomial(2000, 0.1): mean 200, sd 13.4; 5 sd either side
    t.true(v2 > 133 && v2 < 267, `v2 got ${v2} of 2000 (v1 ${r.pods['web-v1']})`);
    t.is((r.pods['web-v1'] ?? 0) + v2, 2000);

    // the source node proxy reported each request with its destination workload
    const nodeA = lab.node('node-a');
    const samples = await scrape(nodeA.agentAdmin);
    const counted = (w: string) => sumMetric(samples, 'istio_requests_total', { source_workload: 'client', destination_workload: w, response_code: '200', reporter: 'source' });
    t.is(counted('web-v2'), v2);
    t.is(counted('web-v1') + counted('web-v2'), 2000);
  });

  test.serial('switching the VirtualService to 0/100 moves every new request within a second of the file change', async (t) => {
    const original = await readFile(path.join(FIXTURE, 'routing.yaml'), 'utf8');
    const switched = original.replace('weight: 90', 'weight: 0').replace('weight: 10', 'weight: 100');
    t.not(switched, original);
    // requests every 10 ms for 5 s; the file changes once node-a has counted 20 of them
    const served = async () =>
      sumMetric(await scrape(lab.node('node-a').agentAdmin), 'istio_requests_total', { source_workload: 'client', destination_service_name: 'web', reporter: 'source' });
    const before0 = await served();
    const timeline = client<[number, number, string, number][]>(lab, ['timeline', 'http://web.shop/', '5000', '10']);
    await eventually(async () => (await served()) - before0 >= 20, 20_000, 'the timeline to get going');
    const changedAt = Date.now();
    await rewriteConfig(lab, 'routing.yaml', switched);
    const rows = await timeline;
    t.true(rows.every(([, status]) => status === 200), 'no request failed across the change');
    const before = rows.filter(([at]) => at < changedAt);
    const late = rows.filter(([at]) => at >= changedAt + 1000);
    t.true(before.some(([, , pod]) => pod === 'web-v1'), 'v1 served before the change');
    t.true(late.length > 50, `${late.length} requests a second after the change`);
    t.deepEqual(
      late.filter(([, , pod]) => pod !== 'web-v2'),
      [],
      'every request started a second after the change went to v2',
    );
    const lastV1 = rows.filter(([, , pod]) => pod === 'web-v1').pop();
    t.log(`last request to v1 started ${lastV1 ? lastV1[0] - changedAt : '-'} ms after the file change`);
  });

  test.serial("a snapshot that changes only routing leaves the nodes' enrolment and capture alone (no rescan of their pods)", async (t) => {
    const nodes = ['node-a', 'node-b'];
    const read = async (node: string) => {
      const s = await scrape(lab.node(node).agentAdmin);
      return {
        version: sumMetric(s, 'nodemesh_agent_snapshot_version'),
        onSnapshot: sumMetric(s, 'nodemesh_agent_datapath_reconciles_total', { trigger: 'snapshot' }),
        atStart: sumMetric(s, 'nodemesh_agent_datapath_reconciles_total', { trigger: 'start' }),
      };
    };
    const before = await Promise.all(nodes.map(read));
    const original = await readFile(path.join(FIXTURE, 'routing.yaml'), 'utf8');
    await rewriteConfig(lab, 'routing.yaml', original.replace('weight: 90', 'weight: 80').replace('weight: 10', 'weight: 20'));
    const after = await eventually(
      async () => {
        const now = await Promise.all(nodes.map(read));
        return now.every((n, i) => n.version > before[i]!.version) ? now : undefined;
      },
      20_000,
      'both agents applying the new snapshot',
    );
    for (const [i, node] of nodes.entries()) {
      // its first reconcile: at start from the last good snapshot, or on the first snapshot when it started without one
      t.true(before[i]!.atStart + before[i]!.onSnapshot >= 1, `${node} reconciled its pods once before`);
      t.is(after[i]!.onSnapshot, before[i]!.onSnapshot, `${node}: snapshot v${after[i]!.version} changed none of its pods, so no reconcile`);
    }
  });

  test.serial('opaque TCP: a TCP route sends every connection to its subset; a server-first protocol on an undeclared port still greets', async (t) => {
    const tcp = async (port: number, n: number, line?: string) => {
      const out = await lab.output('shop/client', ['node', TCP_CLIENT, 'echo.shop', String(port), String(n), ...(line ? [line] : [])]);
      return JSON.parse(out) as { received: string; closed: boolean }[];
    };
    // declared tcp-echo: no sniffing, the bytes go both ways, to v2 only (the TCP route)
    for (let i = 0; i < 4; i++) t.deepEqual(await tcp(7000, 1, `ping ${i}`), [{ received: `echo-v2: ping ${i}\n`, closed: false }]);
    // undeclared port, the server speaks first: after the sniff timeout the L4 path connects
    const [greeted] = await tcp(7001, 1);
    t.is(greeted!.received, 'hello from echo-v2\n');
    const samples = await scrape(lab.node('node-a').agentAdmin);
    t.true(sumMetric(samples, 'istio_tcp_connections_opened_total', { destination_service_name: 'echo', destination_workload: 'echo-v2', request_protocol: 'tcp' }) >= 5);
    t.is(sumMetric(samples, 'istio_tcp_connections_opened_total', { destination_service_name: 'echo', destination_workload: 'echo-v1' }), 0);
  });

  test.serial('opaque TCP: past maxConnections a new connection is refused (UO)', async (t) => {
    const r = await lab.exec('shop/client', ['node', TCP_CLIENT, 'echo.shop', '7001', '3']);
    const conns = JSON.parse(r.stdout) as { received: string; closed: boolean }[];
    t.is(conns.filter((c) => c.received === 'hello from echo-v2\n' && !c.closed).length, 2, JSON.stringify(conns));
    t.is(conns.filter((c) => c.received === '' && c.closed).length, 1, 'the third is closed without a byte');
    const samples = await scrape(lab.node('node-a').agentAdmin);
    t.is(sumMetric(samples, 'istio_tcp_connections_opened_total', { destination_service_name: 'echo', response_flags: 'UO' }), 1);
  });
}
