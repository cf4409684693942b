// `nodemesh check`: a preflight of this node, like `istioctl x precheck` — is everything
// the agent needs here, and if not, what to do about it.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { packagePath } from '../common/paths.js';

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

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
  for (const c of checks) out.write(`${c.ok ? '✔' : '✘'} ${c.name}${c.ok ? '' : `\n    ${c.detail}`}\n`);
  return checks.every((c) => c.ok) ? 0 : 1;
}
