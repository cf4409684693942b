// `nodemesh check`: as `linkerd check` does, one line per condition, ✔ or ✖ with what to do
// about it. `--pre` is the preflight of this node before install (as `istioctl x precheck`):
// kernel, BTF, cgroup v2, bpffs, capabilities. Without it, the mesh too (mesh-survey.ts):
// the control plane reachable and serving with a configuration free of errors, every agent
// connected, ready and on the control plane's snapshot version, certificates valid and not
// about to expire (--expiry-warning), the same roots on every agent, clocks not skewed.
// Exit 1 when any check fails.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { packagePath } from '../common/paths.js';
import { istioDuration } from '../control/validate/durations.js';
import { outputFormat, UsageError, type Values } from './command-table.js';
import { adminHeaders } from './agent-admin.js';
import { earliestExpiry, surveyMesh, type MeshSurvey } from './mesh-survey.js';
import { colours, printData } from './output.js';
import { inTime } from './status.js';

export interface Check {
  /** the group it is shown under */
  section?: string;
  name: string;
  ok: boolean;
  /** what was found, or what to do when not ok */
  detail: string;
}

/** An agent's clock this far from ours fails the check: certificates' validity is judged by it. */
const MAX_CLOCK_SKEW_MS = 5_000;

export function runChecks(): Check[] {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '));
  const cgroup2 = mounts.find((m) => m[2] === 'cgroup2')?.[1];
  const bpffs = mounts.find((m) => m[2] === 'bpf')?.[1];
  const root = process.getuid?.() === 0;
  const capEff = /CapEff:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  const caps = BigInt(`0x${capEff}`);
  const has = (bit: number) => (caps & (1n << BigInt(bit))) !== 0n;
  const CAP_NET_ADMIN = 12,
    CAP_SYS_ADMIN = 21,
    CAP_BPF = 39;
  const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  const [maj, min] = release.split('.').map(Number);
  return [
    {
      name: 'kernel ≥ 5.15 (netns cookie in connect hooks, SO_NETNS_COOKIE)',
      ok: maj > 5 || (maj === 5 && min >= 15),
      detail: release,
    },
    {
      name: 'BTF (/sys/kernel/btf/vmlinux)',
      ok: existsSync('/sys/kernel/btf/vmlinux'),
      detail: 'the verifier and bpftool use it; build a kernel with CONFIG_DEBUG_INFO_BTF=y',
    },
    {
      name: 'cgroup v2 mounted',
      ok: cgroup2 !== undefined,
      detail: cgroup2 ?? 'mount one: mount -t cgroup2 none /sys/fs/cgroup/unified (the agent does this if allowed)',
    },
    {
      name: 'bpffs mounted',
      ok: bpffs !== undefined,
      detail: bpffs ?? 'mount -t bpf bpf /sys/fs/bpf (the agent does this if allowed)',
    },
    {
      name: 'capabilities: CAP_BPF or CAP_SYS_ADMIN, and CAP_NET_ADMIN',
      ok: root || ((has(CAP_BPF) || has(CAP_SYS_ADMIN)) && has(CAP_NET_ADMIN)),
      detail: `CapEff=${capEff}`,
    },
    {
      name: '/run/netns readable (pod network namespaces)',
      ok: !existsSync('/run/netns') || canRead('/run/netns'),
      detail: 'mount the host /var/run/netns with mountPropagation HostToContainer',
    },
    {
      name: 'eBPF objects built',
      ok: existsSync(packagePath('build', 'bpf', 'redirect.bpf.o')),
      detail: 'run `npm run bootstrap`',
    },
  ];
}

function canRead(p: string): boolean {
  try {
    accessSync(p, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

export function printChecks(out: NodeJS.WritableStream): number {
  const checks = runChecks();
  out.write(formatChecks(checks.map((c) => ({ ...c, section: 'this node' })), out));
  return checks.every((c) => c.ok) ? 0 : 1;
}

export async function runCheck(v: Values, out: NodeJS.WritableStream): Promise<number> {
  const checks: Check[] = runChecks().map((c) => ({ ...c, section: 'this node' }));
  if (v.pre !== true) {
    let warnMs: number;
    try {
      warnMs = istioDuration(String(v['expiry-warning'] ?? '1h'), ['--expiry-warning'], { allowZero: true, unbounded: true });
    } catch (err) {
      throw new UsageError(`check: --expiry-warning: ${(err as Error).message}`);
    }
    const control = typeof v.control === 'string' ? v.control : undefined;
    const agents = v.agent as string[] | undefined;
    const lab = typeof v.name === 'string' ? v.name : undefined;
    let survey: MeshSurvey | undefined;
    try {
      survey = await surveyMesh({ ...(control ? { control } : {}), ...(agents ? { agents } : {}), ...(lab ? { lab } : {}), headers: adminHeaders(typeof v['token-file'] === 'string' ? v['token-file'] : undefined) });
    } catch (err) {
      checks.push({ section: 'control plane', name: 'control plane known', ok: false, detail: `${(err as Error).message}; give --control HOST:PORT (its admin port) or --name LAB` });
    }
    if (survey) checks.push(...meshChecks(survey, warnMs));
  }
  printData(out, outputFormat(v.output), { ok: checks.every((c) => c.ok), checks }, () => formatChecks(checks, out));
  return checks.every((c) => c.ok) ? 0 : 1;
}

export function meshChecks(s: MeshSurvey, warnMs: number, now = Date.now()): Check[] {
  const out: Check[] = [];
  const add = (section: string, name: string, ok: boolean, detail: string) => out.push({ section, name, ok, detail });
  const cp = s.control;
  if (!cp) add('control plane', 'control plane known', false, 'no control plane address: give --control HOST:PORT (its admin port, 15014) or --name LAB');
  else {
    add('control plane', `control plane reachable (${cp.address})`, cp.reachable, cp.reachable ? 'reachable' : `${cp.error}: is it running? Its admin port (15014) must be reachable from here; see its logs`);
    if (cp.reachable) {
      add('control plane', 'control plane serving a snapshot', cp.ready, cp.ready ? `snapshot v${cp.snapshotVersion}` : `${cp.error ?? 'not ready'}: it has not compiled its configuration yet; see its logs and \`nodemesh config status\``);
      const sum = cp.summary;
      const errors = (sum?.rejected ?? 0) + (sum?.fileErrors ?? 0) + (sum?.analysis?.errors ?? 0);
      add('control plane', 'configuration free of errors', sum !== undefined && errors === 0, sum ? (errors === 0 ? `${sum.accepted} resources accepted` : `${sum.rejected} rejected, ${sum.fileErrors} file error(s), ${sum.analysis?.errors ?? 0} analysis error(s): run \`nodemesh config status\` for each, with its fix`) : 'no configuration status: run `nodemesh config status`');
      if (cp.signerExpiry !== undefined) {
        const left = cp.signerExpiry * 1000 - now;
        add('control plane', 'CA signing certificate valid and not near expiry', left > warnMs, left > warnMs ? `expires in ${inTime(left)}` : `expires in ${inTime(left)}: rotate the root (\`nodemesh ca rotate\`) or renew the operator's --ca-cert`);
      }
    }
  }
  if (s.agents.length === 0) {
    add('agents', 'agents found', false, 'no agent to check: none is connected to the control plane; start them (the DaemonSet, or `nodemesh lab up`), or give --agent HOST:PORT');
    return out;
  }
  for (const a of s.agents) {
    const connected = cp?.connected?.some((x) => x.node === a.node);
    // an east-west gateway is checked as an agent is, under its own name
    const what = a.gateway ? `gateway on ${a.node}` : `agent ${a.node}`;
    if (cp?.connected) add('agents', `${what} connected to the control plane`, connected === true, connected ? 'connected' : `not connected: ${a.reachable ? 'it runs but has no discovery stream; check --control and its node credential in its logs' : `its admin port ${a.admin} is unreachable too: start the agent on ${a.node}`}`);
    add('agents', `${what} ready`, a.ready, a.ready ? 'ready' : `${a.reason ?? 'not ready'}${a.reachable ? '' : `: start the agent on ${a.node} (or check that ${a.admin} is reachable from here)`}`);
  }
  const reachable = s.agents.filter((a) => a.snapshotVersion !== undefined);
  if (cp?.snapshotVersion !== undefined && reachable.length > 0) {
    const behind = reachable.filter((a) => a.snapshotVersion !== cp.snapshotVersion);
    add('agents', `agents on the control plane's snapshot v${cp.snapshotVersion}`, behind.length === 0, behind.length === 0 ? 'converged' : `${behind.map((a) => `${a.node} runs v${a.snapshotVersion}`).join(', ')}: they converge within seconds; if not, see those agents' logs (a rejected snapshot is counted in nodemesh_agent_snapshots_rejected_total)`);
  }
  const withCerts = reachable.filter((a) => (a.certificates ?? []).length > 0);
  if (withCerts.length > 0) {
    const bad: string[] = [];
    for (const a of withCerts) {
      const exp = earliestExpiry(a);
      const failing = (a.certificates ?? []).filter((c) => c.lastError);
      if (exp === undefined || exp - now <= warnMs) bad.push(`${a.node}: ${exp === undefined ? 'no certificate issued yet' : exp <= now ? `a certificate expired ${inTime(now - exp)} ago` : `a certificate expires in ${inTime(exp - now)}`}`);
      else if (failing.length > 0) bad.push(`${a.node}: renewal failing (${failing[0]!.lastError})`);
    }
    add('certificates', 'workload certificates valid and not about to expire', bad.length === 0, bad.length === 0 ? `every certificate valid for more than ${inTime(warnMs)}` : `${bad.join('; ')}: certificates renew at half their lifetime — check that the agents reach the CA (15012), and that --cert-ttl on the control plane is longer than --expiry-warning`);
    const roots = new Set(withCerts.map((a) => [...(a.trustBundle ?? [])].sort().join(',')));
    add('certificates', 'the same roots trusted on every agent', roots.size === 1, roots.size === 1 ? 'consistent' : 'agents trust different roots: a rotation is spreading (wait --root-change-spread), or an agent does not receive snapshots');
  }
  const skewed = reachable.filter((a) => a.clockSkewMs !== undefined && Math.abs(a.clockSkewMs) > MAX_CLOCK_SKEW_MS);
  add('agents', 'clocks not skewed', skewed.length === 0, skewed.length === 0 ? `within ${MAX_CLOCK_SKEW_MS / 1000} s` : `${skewed.map((a) => `${a.node} ${Math.round(a.clockSkewMs! / 1000)} s`).join(', ')}: certificates are judged by the clock; run NTP (chrony, systemd-timesyncd) on every node`);
  return out;
}

export function formatChecks(checks: readonly Check[], out: NodeJS.WritableStream): string {
  const c = colours(out);
  const lines: string[] = [];
  let section: string | undefined;
  for (const k of checks) {
    if (k.section !== section) {
      section = k.section;
      if (lines.length) lines.push('');
      lines.push(c.bold(section ?? ''), '-'.repeat((section ?? '').length));
    }
    lines.push(k.ok ? `${c.green('✔')} ${k.name}` : `${c.red('✖')} ${k.name}\n    ${k.detail}`);
  }
  const failed = checks.filter((k) => !k.ok).length;
  lines.push('', failed === 0 ? `Status check results are ${c.green('✔')}` : `Status check results are ${c.red('✖')} (${failed} failed)`);
  return `${lines.join('\n')}\n`;
}
