// Live opt-in with the file source: `nodemesh lab annotate` (the CLI, as a user types it)
// rewrites the running pod's document in the lab's config directory; the control plane's
// watcher picks it up, the snapshot says the pod is meshed (or not), and the agent enrolls or
// releases the pod's netns — the one the CNI plugin's ADD named when the pod was created —
// without the pod restarting. The pod, "tool", is not meshed at first and connects to a
// ClusterIP nobody owns every ~100 ms, logging each attempt's start time and curl's exit
// code, so its own connections show when capture begins and ends. Needs root.
import test from 'ava';
import { readFile, stat } from 'node:fs/promises';
import { scrape, sumMetric } from '../../cli/prom-text.js';
import { packagePath } from '../../common/paths.js';
import { isAlive } from '../../deploy/lab/lab-processes.js';
import { nodemesh } from '../helpers/cli.js';
import { eventually } from '../helpers/eventually.js';
import { labPerFile } from '../helpers/lab-per-file.js';
import { enrolledPods, optInBoundMs, waitEnrolment } from '../helpers/live-opt-in.js';
import { canRunPrivileged } from '../helpers/privileged.js';

const FIXTURE = packagePath('test', 'fixtures', 'live-opt-in');
const LAB = 'lk-optin';

interface Attempt {
  /** when the attempt started (ms since the epoch, the pod's clock: this machine's) */
  at: number;
  exit: number;
}

if (canRunPrivileged('live opt-in (file source)')) {
  const lab = labPerFile({ dir: FIXTURE, name: LAB });
  const node = () => lab.node('node-a').agentAdmin;
  const toolLog = () => lab.pod('tool').containers[0]!.log;
  const toolPid = () => lab.state.processes.find((p) => p.role === 'pod' && p.name === 'shop/tool/connect')!.pid;

  const attempts = async (): Promise<Attempt[]> =>
    [...(await readFile(toolLog(), 'utf8').catch(() => '')).matchAll(/^(\d{13}) exit (\d+)$/gm)].map((m) => ({ at: Number(m[1]), exit: Number(m[2]) }));
  /** the first `n` attempts that started at or after `from` */
  const attemptsFrom = (from: number, n: number, what: string) =>
    eventually(
      async () => {
        const a = (await attempts()).filter((x) => x.at >= from);
        return a.length >= n ? a.slice(0, n) : undefined;
      },
      30_000,
      what,
    );
  /** `lab annotate` through the CLI; resolves when the config file was rewritten (its mtime) */
  const annotate = async (...changes: string[]): Promise<number> => {
    const r = await nodemesh(['lab', 'annotate', 'shop/tool', ...changes, '--overwrite', '--name', LAB, '-o', 'json']);
    if (r.code !== 0) throw new Error(`lab annotate exited ${r.code}: ${r.stderr}`);
    const out = JSON.parse(r.stdout) as { via: string; file: string; changed: boolean };
    if (out.via !== 'file' || !out.changed) throw new Error(`lab annotate: ${r.stdout}`);
    return (await stat(out.file)).mtimeMs;
  };
  const requestsFromTool = async () => sumMetric(await scrape(node()), 'istio_requests_total', { reporter: 'source', source_workload: 'tool' });

  test.serial('at first tool is not meshed: not enrolled, and its connects to the ClusterIP fail at once (not redirected)', async (t) => {
    const first = await attemptsFrom(0, 2, 'two attempts by tool');
    t.deepEqual(first.map((a) => a.exit), [7, 7]);
    t.false((await enrolledPods(node())).some((p) => p.uid === 'shop/tool'));
  });

  test.serial('annotating the running pod nodemesh.io/mesh=enabled meshes it within the bound: its next connections go through the node proxy', async (t) => {
    const pid = toolPid();
    const before = await requestsFromTool();
    const reconciles = () => scrape(node()).then((s) => sumMetric(s, 'nodemesh_agent_datapath_reconciles_total', { trigger: 'snapshot' }));
    const reconciledBefore = await reconciles();
    const bound = optInBoundMs();
    const changed = await annotate('nodemesh.io/mesh=enabled');
    const enrolledAt = await waitEnrolment(node(), 'shop/tool', true);
    t.true((await reconciles()) > reconciledBefore, "the snapshot that changed one of node-a's pods reconciled its datapath");
    const entry = (await enrolledPods(node())).find((p) => p.uid === 'shop/tool')!;
    t.truthy(entry.cni, 'enrolled by the netns the CNI plugin named (no scan needed)');
    // every connect the pod starts once it is enrolled is captured
    const after = await attemptsFrom(enrolledAt, 3, "three of tool's attempts after its enrolment");
    t.deepEqual(after.map((a) => a.exit), [0, 0, 0]);
    const firstOk = (await attempts()).find((a) => a.at >= changed && a.exit === 0)!;
    t.log(`enrolled ${Math.round(enrolledAt - changed)} ms after the file changed; tool's first connection through the mesh started ${Math.round(firstOk.at - changed)} ms after (bound ${bound} ms)`);
    t.true(firstOk.at - changed <= bound, `first redirected connection ${firstOk.at - changed} ms after the change (bound ${bound} ms)`);
    const counted = await eventually(async () => ((await requestsFromTool()) > before ? requestsFromTool() : undefined), 10_000, 'the node proxy counting requests from tool');
    t.true(counted > before);
    t.is(toolPid(), pid);
    t.true(await isAlive(pid), 'the pod was not restarted');
  });

  test.serial('removing the annotation unmeshes it within the bound: its next connections are no longer redirected', async (t) => {
    const pid = toolPid();
    const bound = optInBoundMs();
    const changed = await annotate('nodemesh.io/mesh-');
    const releasedAt = await waitEnrolment(node(), 'shop/tool', false);
    const after = await attemptsFrom(releasedAt, 3, "three of tool's attempts after its release");
    t.deepEqual(after.map((a) => a.exit), [7, 7, 7]);
    const firstOut = (await attempts()).find((a) => a.at >= changed && a.exit === 7)!;
    t.log(`released ${Math.round(releasedAt - changed)} ms after the file changed; tool's first connection outside the mesh started ${Math.round(firstOut.at - changed)} ms after (bound ${bound} ms)`);
    t.true(firstOut.at - changed <= bound, `first connection not redirected ${firstOut.at - changed} ms after the change (bound ${bound} ms)`);
    t.is(toolPid(), pid);
    t.true(await isAlive(pid), 'the pod was not restarted');
  });

  test.serial('opting it in again after the release enrolls the same netns again (the sandbox is remembered across releases)', async (t) => {
    const changed = await annotate('nodemesh.io/mesh=enabled');
    const enrolledAt = await waitEnrolment(node(), 'shop/tool', true);
    t.truthy((await enrolledPods(node())).find((p) => p.uid === 'shop/tool')!.cni);
    const after = await attemptsFrom(enrolledAt, 2, "two of tool's attempts after its second enrolment");
    t.deepEqual(after.map((a) => a.exit), [0, 0]);
    t.log(`enrolled again ${Math.round(enrolledAt - changed)} ms after the change`);
  });
}
