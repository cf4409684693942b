// `nodemesh check` against a running lab, as `linkerd check` is used: ✔ everywhere on a healthy
// mesh, and ✖ with the right fix when certificates are about to expire (a short TTL), when an
// agent is stopped, and when the control plane is down. The real CLI as a process, the real
// control plane and agents (lab `cc-check`, certificates of 30 minutes).
import test from 'ava';
import { packagePath } from '../../common/paths.js';
import { eventually } from '../helpers/eventually.js';
import { fetchWithin } from '../helpers/fetch-within.js';
import { nodemesh } from '../helpers/cli.js';
import { labPerFile } from '../helpers/lab-per-file.js';
import { canRunPrivileged } from '../helpers/privileged.js';

const LAB = 'cc-check';
const FIXTURE = packagePath('test', 'fixtures', 'mesh-basic');

interface CheckJson {
  ok: boolean;
  checks: { section: string; name: string; ok: boolean; detail: string }[];
}

async function check(args: string[] = []): Promise<{ code: number; text: string; json: CheckJson }> {
  const text = await nodemesh(['check', '--name', LAB, ...args]);
  const json = await nodemesh(['check', '--name', LAB, ...args, '-o', 'json']);
  return { code: json.code, text: text.stdout, json: JSON.parse(json.stdout) as CheckJson };
}

/** Whether a TCP port answers an HTTP GET (the agent's or control plane's admin port). */
async function answers(hostport: string): Promise<boolean> {
  try {
    await fetchWithin(`http://${hostport}/healthz/ready`, 1_000);
    return true;
  } catch {
    return false;
  }
}

if (canRunPrivileged('nodemesh check in the lab')) {
  // workload certificates of 30 min: "about to expire" under the default 1 h warning
  const lab = labPerFile({ dir: FIXTURE, name: LAB, env: { NODEMESH_CERT_TTL: '30m' } });

  test.serial('a healthy mesh: every check ✔ and exit 0', async (t) => {
    const r = await check(['--expiry-warning', '10m']);
    t.is(r.code, 0, r.text);
    t.true(r.json.ok);
    t.deepEqual(r.json.checks.filter((c) => !c.ok), [], r.text);
    for (const node of lab.state.nodes) t.true(r.json.checks.some((c) => c.name === `agent ${node.name} ready` && c.ok), `agent ${node.name} ready is checked`);
    t.true(r.json.checks.some((c) => c.section === 'certificates' && c.ok));
    t.notRegex(r.text, /✖/);
    t.regex(r.text, /Status check results are .*✔/);
  });

  test.serial('certificates about to expire (a 30 min TTL under the 1 h warning): ✖ with what to do, exit 1', async (t) => {
    const r = await check();
    t.is(r.code, 1, r.text);
    const cert = r.json.checks.find((c) => c.name === 'workload certificates valid and not about to expire');
    t.like(cert, { ok: false });
    t.regex(cert!.detail, /renew at half their lifetime/);
    t.regex(r.text, /✖ workload certificates valid and not about to expire/);
  });

  test.serial('an agent stopped: ✖ for its node with the fix, exit 1', async (t) => {
    const nodeB = lab.node('node-b');
    const supervisor = lab.state.processes.find((p) => p.role === 'agent' && p.name === 'node-b');
    t.truthy(supervisor, 'the lab runs an agent on node-b');
    process.kill(supervisor!.pid, 'SIGTERM'); // the DaemonSet's pod deleted: no restart
    await eventually(async () => ((await answers(nodeB.agentAdmin)) ? undefined : true), 30_000, 'node-b agent admin port closed');
    const r = await check(['--expiry-warning', '10m']);
    t.is(r.code, 1, r.text);
    const ready = r.json.checks.find((c) => c.name === 'agent node-b ready');
    t.like(ready, { ok: false });
    t.regex(ready!.detail, /start the agent on node-b/);
    t.like(r.json.checks.find((c) => c.name === 'agent node-a ready'), { ok: true }, 'the other agent is still ✔');
  });

  test.serial('the control plane down: ✖ "control plane reachable" with the fix, exit 1', async (t) => {
    const control = lab.state.processes.find((p) => p.role === 'control');
    t.truthy(control);
    process.kill(control!.pid, 'SIGTERM');
    await eventually(async () => ((await answers(lab.state.controlAddress!.admin)) ? undefined : true), 30_000, 'control plane admin port closed');
    const r = await check(['--expiry-warning', '10m']);
    t.is(r.code, 1, r.text);
    const reachable = r.json.checks.find((c) => c.name.startsWith('control plane reachable'));
    t.like(reachable, { ok: false });
    t.regex(reachable!.detail, /is it running\?/);
    t.regex(r.text, /✖ control plane reachable/);
  });
}
