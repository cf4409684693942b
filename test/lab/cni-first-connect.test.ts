// A pod's very first connection is captured: the lab creates each pod's sandbox through the
// chained CNI plugin (deploy/lab/lab-cni.ts) before its program starts, as a container
// runtime does, so an opted-in pod whose program connects at its first instruction to a
// ClusterIP nobody owns reaches the Service through the node proxy on that first attempt,
// while an unmeshed pod's first connect fails at once (the route is unreachable). Needs root.
// The lab makes every pod's netns only after the agents are ready, so only the plugin can
// have enrolled these pods; that ADD alone enrolls before returning is also shown, with an
// empty scan directory, by cni-plugin.test.ts.
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { scrape, sumMetric } from '../../cli/prom-text.js';
import { packagePath } from '../../common/paths.js';
import { eventually } from '../helpers/eventually.js';
import { labPerFile } from '../helpers/lab-per-file.js';
import { canRunPrivileged } from '../helpers/privileged.js';

const FIXTURE = packagePath('test', 'fixtures', 'cni-first-connect');
const LAB = 'h10-cni';

/** "attempt N exit C" lines of a pod's container log, once it has `n` of them. */
async function attempts(log: string, n: number): Promise<Array<{ attempt: number; exit: number }>> {
  return eventually(
    async () => {
      const lines = [...(await readFile(log, 'utf8').catch(() => '')).matchAll(/^attempt (\d+) exit (\d+)$/gm)].map((m) => ({
        attempt: Number(m[1]),
        exit: Number(m[2]),
      }));
      return lines.length >= n ? lines : undefined;
    },
    30_000,
    `${n} attempt(s) in ${log}`,
  );
}

if (canRunPrivileged('CNI first connect')) {
  const lab = labPerFile({ dir: FIXTURE, name: LAB });

  test.serial("an opted-in pod's first connect, at its program's first instruction, goes through the node proxy", async (t) => {
    const first = lab.pod('first');
    const log = first.containers[0]!.log;
    const [one] = await attempts(log, 1);
    t.is(one!.attempt, 1);
    // 7 is curl's "could not connect": what an uncaptured connect to a ClusterIP gets here
    t.not(one!.exit, 7, 'the very first connect was not captured');
    // the backend may still have been starting on the first attempt; one gets through
    const all = await eventually(
      async () => {
        const a = await attempts(log, 1);
        return a.some((x) => x.exit === 0) ? a : undefined;
      },
      30_000,
      'an attempt that reached web-1',
    );
    t.true(all.some((x) => x.exit === 0));
    // the proxy records a connection as its flow is accounted: wait for the counter, not a moment
    const needed = all.findIndex((x) => x.exit === 0) + 1;
    let opened = 0;
    const samples = await eventually(
      async () => {
        const got = await scrape(lab.node('node-a').agentAdmin);
        opened = sumMetric(got, 'istio_tcp_connections_opened_total', { source_workload: 'first', destination_service: 'web.shop.svc.cluster.local' });
        return opened >= needed ? got : undefined;
      },
      20_000,
      'the node proxy counting the connections from first',
    ).catch(() => undefined);
    t.true(opened >= needed, `the node proxy counted ${opened} connection(s) from first`);
    // the lab ran the plugin for every pod: the meshed one enrolled, the others passed through
    const cni = samples ?? (await scrape(lab.node('node-a').agentAdmin));
    t.is(sumMetric(cni, 'nodemesh_agent_cni_requests_total', { command: 'ADD', status: 'enrolled' }), 1);
    t.is(sumMetric(cni, 'nodemesh_agent_cni_requests_total', { command: 'ADD', status: 'not-meshed' }), 2);
  });

  test.serial("an unmeshed pod's first connect is not captured (the CNI plugin passed it through)", async (t) => {
    const [one] = await attempts(lab.pod('plain').containers[0]!.log, 1);
    t.is(one!.exit, 7);
  });
}
