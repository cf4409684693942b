// The eBPF datapath on the real kernel: a throwaway network namespace (the "pod") joined
// to the root namespace by a veth, a cgroup v2 directory for the pods and one for the
// proxy, a proxy process listening on the root side, and clients run inside the pod's
// netns AND the pods cgroup. Needs root; fails (instead of skipping) when CI=true and it
// cannot run. Everything it makes is named nmt-dp-<pid> and removed in after.always.
import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { Datapath, cgroup2Mount, type DatapathOptions } from '../../agent/datapath/redirect.js';
import { packageRoot } from '../../common/paths.js';
import { eventually } from '../helpers/eventually.js';

const root = packageRoot();
const originalDstUrl = new URL('../../agent/datapath/socket-calls.js', import.meta.url).href;
const datapathUrl = new URL('../../agent/datapath/redirect.js', import.meta.url).href;

function preflight(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (netns, cgroups, bpf)';
  for (const f of ['build/bpf/redirect.bpf.o', 'build/Release/nodemesh_native.node'])
    if (!fs.existsSync(path.join(root, f))) return `${f} missing: run bash scripts/build.sh`;
  for (const tool of ['ip', 'nsenter', 'bpftool'])
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} not installed`;
    }
  return undefined;
}
const cannot = preflight();
const serial = cannot && process.env.CI !== 'true' ? test.serial.skip : test.serial;
/** A serial test on the shared fixture, with a timeout so a hang still reaches after.always. */
const kernelTest = (title: string, fn: (t: ExecutionContext) => Promise<void>) =>
  serial(title, async (t) => {
    t.timeout(30_000);
    await fn(t);
  });

// ---- names and addresses, unique per test process ----
const id = process.pid % 100000;
const net3 = `10.251.${(process.pid % 200) + 20}`;
const names = {
  nsA: `nmt-dp-${id}-a`, // enrolled
  nsB: `nmt-dp-${id}-b`, // never enrolled
  hostA: `nmt-dp-${id}ha`,
  peerA: `nmt-dp-${id}pa`,
  hostB: `nmt-dp-${id}hb`,
  peerB: `nmt-dp-${id}pb`,
};
const addr = {
  proxy: `${net3}.1`, // host side of A: the proxy listens here
  podA: `${net3}.2`,
  hostB: `${net3}.5`,
  podB: `${net3}.6`,
  real: `${net3}.9`, // a real server in the root netns
  hostA6: `fd51:251:${id.toString(16)}::1`,
  podA6: `fd51:251:${id.toString(16)}::2`,
};
const nobody = '198.51.100.7'; // TEST-NET-2: nobody owns it
const MARK = 0x6e6d;
const pinDir = `/sys/fs/bpf/nmt-dp-${id}/v1`;
const crashPinDir = `/sys/fs/bpf/nmt-dp-${id}-crash/v1`;

function sh(cmd: string, ...args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.trim() ?? String(err)}`);
  }
}
const quiet = (fn: () => unknown) => {
  try {
    fn();
  } catch {
    // teardown: best effort
  }
};

type Event = Record<string, unknown> & { event: string };

/** A child process printing one JSON event per line. */
class Child {
  readonly events: Event[] = [];
  readonly exited: Promise<number | null>;
  private waiters: Array<() => void> = [];
  constructor(readonly proc: ChildProcess) {
    readline.createInterface({ input: proc.stdout! }).on('line', (l) => {
      try {
        this.events.push(JSON.parse(l) as Event);
      } catch {
        this.events.push({ event: 'garbage', line: l });
      }
      for (const w of this.waiters.splice(0)) w();
    });
    proc.stderr!.on('data', () => {}); // pino logs
    this.exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  }
  async waitFor(pred: (e: Event) => boolean, ms = 20_000): Promise<Event> {
    const deadline = Date.now() + ms;
    for (;;) {
      const e = this.events.find(pred);
      if (e) return e;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for an event; got ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }
  send(line: string): void {
    this.proc.stdin!.write(line + '\n');
  }
}

// The proxy: accepts, answers SO_ORIGINAL_DST through agent/original-dst.ts, writes
// "proxy\n" and keeps the connection until told `release <client port>`.
const PROXY = `
import net from 'node:net';
import readline from 'node:readline';
const { originalDst } = await import(process.env.NMT_ORIG_DST_URL);
const held = new Map();
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const srv = net.createServer((s) => {
  let orig = null, err = null;
  try { orig = originalDst(s); } catch (e) { err = { code: e.code, errnoCode: e.errnoCode }; }
  s.on('error', () => {});
  held.set(String(s.remotePort), s);
  out({ event: 'accept', remoteAddress: s.remoteAddress, remotePort: s.remotePort, orig, err });
  s.write('proxy\\n');
});
srv.listen(0, process.env.NMT_PROXY_IP, () => out({ event: 'listening', port: srv.address().port }));
readline.createInterface({ input: process.stdin }).on('line', (l) => {
  const [cmd, port] = l.split(' ');
  if (cmd === 'release') held.get(port)?.end();
  if (cmd === 'block') { const until = Date.now() + Number(port); while (Date.now() < until); } // a busy proxy
});
`;

// A client: dials NMT_HOST:NMT_PORT (from a socket marked NMT_MARK if set), reports
// what getpeername says, collects data until the server closes.
const CLIENT = `
import net from 'node:net';
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const host = process.env.NMT_HOST, port = Number(process.env.NMT_PORT);
async function dial(host, port) {
  let sock;
  if (process.env.NMT_MARK) {
    const { markedSocket } = await import(process.env.NMT_ORIG_DST_URL);
    sock = markedSocket(Number(process.env.NMT_MARK), net.isIPv6(host) ? 6 : 4);
    sock.connect(port, host);
  } else sock = net.connect({ host, port });
  if (process.env.NMT_FIRE) { // write, close, exit: gone before a slow proxy accepts
    sock.on('connect', () => { out({ event: 'connected', localPort: sock.localPort }); sock.write('fire\\n', () => sock.destroy()); });
    sock.on('close', () => process.exit(0));
    return;
  }
  let data = '';
  setTimeout(() => { out({ event: 'error', code: 'TIMEOUT' }); process.exit(0); }, 4000).unref();
  sock.on('connect', () => out({ event: 'connected', remoteAddress: sock.remoteAddress, remotePort: sock.remotePort, localAddress: sock.localAddress, localPort: sock.localPort }));
  sock.on('data', (d) => { data += d; });
  sock.on('end', () => { out({ event: 'end', data }); sock.end(); });
  sock.on('error', (e) => out({ event: 'error', code: e.code }));
  sock.on('close', () => process.exit(0)); // also when a local listener is still open
}
if (process.env.NMT_LOOPBACK) {
  const srv = net.createServer((s) => { out({ event: 'loopback-accept' }); s.end('loopback\\n'); srv.close(); });
  srv.listen(0, '127.0.0.1', () => dial('127.0.0.1', srv.address().port));
} else await dial(host, port);
`;

interface Fixture {
  cg2: string;
  podsCg: string;
  proxyCg: string;
  proxy: Child;
  proxyPort: number;
  real: { server: net.Server; port: number; seen: string[] }; // on addr.real
  realOnProxyIp: { server: net.Server; port: number; seen: string[] }; // on addr.proxy, not the proxy port
  real6: { server: net.Server; port: number; seen: string[] };
  dp?: Datapath;
  cookieA?: bigint;
  children: Child[];
}
let fx: Fixture | undefined;
const cleanups: Array<() => void | Promise<void>> = [];

function realServer(host: string): Promise<Fixture['real']> {
  const seen: string[] = [];
  const server = net.createServer((s) => {
    seen.push(`${s.remoteAddress}:${s.remotePort}`);
    s.on('error', () => {});
    s.end('real\n');
  });
  cleanups.push(() => void server.close());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve({ server, port: (server.address() as net.AddressInfo).port, seen }));
  });
}

function spawnInCgroup(cgroup: string, netns: string | undefined, code: string, env: Record<string, string>): Child {
  // join the cgroup first (ip netns exec would remount /sys), then enter the netns
  const enter = netns ? `nsenter --net=/run/netns/${netns} ` : '';
  const proc = spawn('sh', ['-c', `echo $$ > "$1/cgroup.procs" && exec ${enter}"$2" --input-type=module -e "$3"`, 'sh', cgroup, process.execPath, code], {
    env: { ...process.env, NMT_ORIG_DST_URL: originalDstUrl, NMT_DATAPATH_URL: datapathUrl, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const child = new Child(proc);
  fx?.children.push(child);
  return child;
}

/** Runs a client in `netns` + the pods cgroup; releases it on the proxy if it landed there. */
async function dial(netns: string, host: string, port: number, extra: Record<string, string> = {}, whileOpen?: (accept: Event) => void | Promise<void>) {
  const f = fx!;
  const client = spawnInCgroup(f.podsCg, netns, CLIENT, { NMT_HOST: host, NMT_PORT: String(port), ...extra });
  const first = await client.waitFor((e) => e.event === 'connected' || e.event === 'error');
  let accept: Event | undefined;
  if (first.event === 'connected') {
    // either the proxy accepted it (and holds it until released) or the client already
    // got its answer from whoever else it reached
    const landed = f.proxy.waitFor((e) => e.event === 'accept' && e.remotePort === first.localPort);
    const answered = client.waitFor((e) => e.event === 'end' || e.event === 'error');
    const e = await Promise.race([landed, answered]);
    landed.catch(() => {});
    answered.catch(() => {});
    accept = e.event === 'accept' ? e : undefined;
    if (accept) {
      await whileOpen?.(accept);
      f.proxy.send(`release ${String(first.localPort)}`);
    }
  }
  const killer = setTimeout(() => client.proc.kill('SIGKILL'), 8000);
  await client.exited;
  clearTimeout(killer);
  return { connected: first, accept, events: client.events, end: client.events.find((e) => e.event === 'end') };
}

test.before(async () => {
  if (cannot) throw new Error(`datapath tests cannot run: ${cannot}`);
  const cg2 = cgroup2Mount();
  const podsCg = path.join(cg2, `nmt-dp-${id}-pods`);
  const proxyCg = path.join(cg2, `nmt-dp-${id}-proxy`);
  fx = { cg2, podsCg, proxyCg, children: [] } as unknown as Fixture;
  for (const cg of [podsCg, proxyCg]) {
    fs.mkdirSync(cg);
    cleanups.push(() => rmdirCgroup(cg));
  }
  for (const ns of [names.nsA, names.nsB]) {
    sh('ip', 'netns', 'add', ns);
    cleanups.push(() => quiet(() => sh('ip', 'netns', 'del', ns)));
    sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
  }
  const pairs: Array<[string, string, string, string, string, string]> = [
    [names.hostA, names.peerA, names.nsA, addr.proxy, addr.podA, '30'],
    [names.hostB, names.peerB, names.nsB, addr.hostB, addr.podB, '30'],
  ];
  for (const [host, peer, ns, hostIp, podIp, len] of pairs) {
    sh('ip', 'link', 'add', host, 'type', 'veth', 'peer', 'name', peer);
    cleanups.push(() => quiet(() => sh('ip', 'link', 'del', host)));
    sh('ip', 'link', 'set', peer, 'netns', ns);
    sh('ip', 'addr', 'add', `${hostIp}/${len}`, 'dev', host);
    sh('ip', 'link', 'set', host, 'up');
    sh('ip', '-n', ns, 'addr', 'add', `${podIp}/${len}`, 'dev', peer);
    sh('ip', '-n', ns, 'link', 'set', peer, 'up');
    sh('ip', '-n', ns, 'route', 'add', 'default', 'via', hostIp);
  }
  sh('ip', 'addr', 'add', `${addr.real}/32`, 'dev', names.hostA);
  sh('ip', 'addr', 'add', `${addr.hostA6}/64`, 'dev', names.hostA, 'nodad');
  sh('ip', '-n', names.nsA, 'addr', 'add', `${addr.podA6}/64`, 'dev', names.peerA, 'nodad');

  fx.real = await realServer(addr.real);
  fx.realOnProxyIp = await realServer(addr.proxy);
  fx.real6 = await realServer(addr.hostA6);
  fx.proxy = spawnInCgroup(proxyCg, undefined, PROXY, { NMT_PROXY_IP: addr.proxy });
  fx.proxyPort = (await fx.proxy.waitFor((e) => e.event === 'listening')).port as number;
  fx.dp = await Datapath.open(dpOptions());
  fx.cookieA = fx.dp.enroll(`/run/netns/${names.nsA}`);
});

function dpOptions(over: Partial<DatapathOptions> = {}): DatapathOptions {
  return { pinDir, podsCgroup: fx!.podsCg, proxyCgroup: fx!.proxyCg, proxyIp: addr.proxy, proxyPort: fx!.proxyPort, mark: MARK, ...over };
}

/** Removes a cgroup once its last process has left it (children may still be exiting). */
async function rmdirCgroup(cg: string): Promise<void> {
  await eventually(
    () => {
      try {
        fs.rmdirSync(cg);
      } catch {
        // EBUSY while a process is still in it
      }
      return !fs.existsSync(cg);
    },
    10_000,
    `${cg} to be empty and removed`,
    100,
  ).catch(() => {}); // the after hook names what is left
}

test.after.always('everything the tests made is gone: processes, pins, cgroups, netns, veths', async (t) => {
  for (const c of fx?.children ?? []) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  await Promise.all((fx?.children ?? []).map((c) => c.exited));
  quiet(() => fx?.dp?.close({ unpin: true }));
  quiet(() => Datapath.cleanup(pinDir));
  quiet(() => Datapath.cleanup(crashPinDir));
  for (const c of cleanups.reverse()) await c();
  if (!fx) return;
  const netns = sh('ip', 'netns', 'list');
  const links = sh('ip', '-o', 'link', 'show');
  for (const n of [names.nsA, names.nsB]) t.false(netns.includes(n), `netns ${n} left`);
  for (const l of [names.hostA, names.hostB]) t.false(links.includes(l), `veth ${l} left`);
  for (const p of [fx.podsCg, fx.proxyCg, path.dirname(pinDir), path.dirname(crashPinDir)]) t.false(fs.existsSync(p), `${p} left`);
});


const bpftoolCgroup = (dir: string) => JSON.parse(sh('bpftool', 'cgroup', 'show', dir, '-j').trim() || '[]') as Array<{ name: string }>;
const mapCount = (name: string) => (JSON.parse(sh('bpftool', 'map', 'dump', 'pinned', path.join(pinDir, 'maps', name), '-j')) as unknown[]).length;

kernelTest("an enrolled netns's connect() to an address nobody owns lands on the proxy, which reads the dialled address with SO_ORIGINAL_DST", async (t) => {
  const r = await dial(names.nsA, nobody, 80);
  t.is(r.connected.event, 'connected', JSON.stringify(r.events));
  t.truthy(r.accept, 'the proxy accepted the connection');
  t.is(r.accept?.remoteAddress, addr.podA);
  t.deepEqual(r.accept?.orig, { ip: nobody, port: 80 });
  t.is(r.end?.data, 'proxy\n');
});

kernelTest("getpeername() in the app reports the address it dialled, not the proxy's", async (t) => {
  const r = await dial(names.nsA, nobody, 8443);
  t.is(r.connected.remoteAddress, nobody);
  t.is(r.connected.remotePort, 8443);
  t.deepEqual(r.accept?.orig, { ip: nobody, port: 8443 });
});

kernelTest('while a redirected connection is open its proxy-side tuple maps to the original destination; both records go when it closes', async (t) => {
  const dp = fx!.dp!;
  const cookiesBefore = mapCount('nm_orig_by_cookie');
  let tuple: { clientIp: string; clientPort: number } | undefined;
  const r = await dial(names.nsA, nobody, 9000, {}, (accept) => {
    tuple = { clientIp: accept.remoteAddress as string, clientPort: accept.remotePort as number };
    t.deepEqual(dp.originalDstByTuple(tuple), { ip: nobody, port: 9000, v4Mapped: false });
    t.true(dp.originalDsts().some((e) => e.tuple.clientPort === tuple!.clientPort && e.tuple.proxyPort === fx!.proxyPort));
    t.is(mapCount('nm_orig_by_cookie'), cookiesBefore + 1);
  });
  t.truthy(r.end, 'the client saw the proxy close');
  t.truthy(tuple);
  // the app's socket reaches TCP_CLOSE when the proxy acks its FIN, a moment after it exits
  await eventually(() => dp.originalDstByTuple(tuple!) === null && mapCount('nm_orig_by_cookie') === cookiesBefore, 20_000, 'the entry removed at TCP_CLOSE');
  t.is(dp.originalDstByTuple(tuple!), null);
  t.is(mapCount('nm_orig_by_cookie'), cookiesBefore);
});

kernelTest('a client that writes and closes before the busy proxy accepts still gets its original destination', async (t) => {
  const f = fx!;
  f.proxy.send('block 1500');
  const client = spawnInCgroup(f.podsCg, names.nsA, CLIENT, { NMT_HOST: nobody, NMT_PORT: '7070', NMT_FIRE: '1' });
  const connected = await client.waitFor((e) => e.event === 'connected');
  await client.exited;
  const accept = await f.proxy.waitFor((e) => e.event === 'accept' && e.remotePort === connected.localPort);
  f.proxy.send(`release ${String(connected.localPort)}`);
  t.deepEqual(accept.orig, { ip: nobody, port: 7070 }, JSON.stringify(accept));
  const tuple = { clientIp: addr.podA, clientPort: connected.localPort as number };
  t.is(f.dp!.originalDstByTuple(tuple), null, 'the one read removed the record the closed app left');
});

kernelTest('connect6 to a v4-mapped address is redirected and the app sees ::ffff:<dialled>; real IPv6 is left alone', async (t) => {
  const mapped = await dial(names.nsA, `::ffff:${nobody}`, 8080);
  t.deepEqual(mapped.accept?.orig, { ip: nobody, port: 8080 });
  t.is(mapped.connected.remoteAddress, `::ffff:${nobody}`);
  t.is(mapped.connected.remotePort, 8080);

  const real = await dial(names.nsA, addr.hostA6, fx!.real6.port);
  t.is(real.accept, undefined, 'the proxy did not see the IPv6 connection');
  t.is(real.end?.data, 'real\n');
  t.true(fx!.real6.seen.includes(`${addr.podA6}:${String(real.connected.localPort)}`));
});

kernelTest('a netns that is not enrolled is not redirected', async (t) => {
  const r = await dial(names.nsB, addr.real, fx!.real.port);
  t.is(r.accept, undefined);
  t.is(r.end?.data, 'real\n');
  t.true(fx!.real.seen.includes(`${addr.podB}:${String(r.connected.localPort)}`));
});

kernelTest('a socket carrying the configured mark is not redirected', async (t) => {
  const marked = await dial(names.nsA, addr.real, fx!.real.port, { NMT_MARK: String(MARK) });
  t.is(marked.accept, undefined);
  t.is(marked.end?.data, 'real\n');
  const other = await dial(names.nsA, addr.real, fx!.real.port, { NMT_MARK: String(MARK + 1) });
  t.deepEqual(other.accept?.orig, { ip: addr.real, port: fx!.real.port }, 'another mark is redirected');
});

kernelTest("loopback destinations and the proxy's own address are not redirected", async (t) => {
  const lo = await dial(names.nsA, '127.0.0.1', 0, { NMT_LOOPBACK: '1' });
  t.is(lo.end?.data, 'loopback\n');
  t.true(lo.events.some((e) => e.event === 'loopback-accept'));
  const own = await dial(names.nsA, addr.proxy, fx!.realOnProxyIp.port);
  t.is(own.accept, undefined);
  t.is(own.end?.data, 'real\n');
});

kernelTest('unenroll() stops the redirect for new connections; enrolled() lists exactly the enrolled namespaces', async (t) => {
  const dp = fx!.dp!;
  t.deepEqual(dp.enrolled(), [fx!.cookieA]);
  t.not(Datapath.netnsCookie(`/run/netns/${names.nsB}`), fx!.cookieA);
  t.true(dp.unenroll(fx!.cookieA!));
  t.false(dp.unenroll(fx!.cookieA!));
  t.deepEqual(dp.enrolled(), []);
  const r = await dial(names.nsA, addr.real, fx!.real.port);
  t.is(r.accept, undefined);
  t.is(r.end?.data, 'real\n');
  t.is(dp.enroll(`/run/netns/${names.nsA}`), fx!.cookieA!);
  const again = await dial(names.nsA, addr.real, fx!.real.port);
  t.deepEqual(again.accept?.orig, { ip: addr.real, port: fx!.real.port });
});

kernelTest('SO_ORIGINAL_DST on a connection that was not redirected fails with NM_ERR_ORIGINAL_DST', async (t) => {
  const sock = net.connect({ host: addr.proxy, port: fx!.proxyPort });
  sock.on('error', () => {});
  await new Promise((resolve) => sock.once('connect', resolve));
  const accept = await fx!.proxy.waitFor((e) => e.event === 'accept' && e.remotePort === sock.localPort);
  fx!.proxy.send(`release ${String(sock.localPort)}`);
  sock.destroy();
  t.is(accept.orig, null);
  t.like(accept.err as object, { code: 'NM_ERR_ORIGINAL_DST' });
});

kernelTest('a restarted agent takes over the pinned maps and links, swapping the programs atomically', async (t) => {
  const before = fx!.dp!.links();
  fx!.dp!.close(); // stop without unpinning, as for an upgrade
  const gap = await dial(names.nsA, nobody, 81);
  t.deepEqual(gap.accept?.orig, { ip: nobody, port: 81 }, 'the pinned links keep redirecting while no agent runs');

  fx!.dp = await Datapath.open(dpOptions());
  const after = fx!.dp.links();
  t.deepEqual(after.map((l) => [l.program, l.linkId, l.reused]), before.map((l) => [l.program, l.linkId, true]));
  t.true(after.every((l, i) => l.progId !== before[i]!.progId), 'every link runs the new program');
  t.deepEqual(fx!.dp.enrolled(), [fx!.cookieA], 'enrolments survive in the pinned map');
  const r = await dial(names.nsA, nobody, 82);
  t.deepEqual(r.accept?.orig, { ip: nobody, port: 82 });
});

kernelTest('close({unpin: true}) detaches every program and removes every pin', async (t) => {
  t.is(bpftoolCgroup(fx!.podsCg).length, 5);
  t.is(bpftoolCgroup(fx!.proxyCg).length, 1);
  fx!.dp!.close({ unpin: true });
  t.deepEqual(bpftoolCgroup(fx!.podsCg), []);
  t.deepEqual(bpftoolCgroup(fx!.proxyCg), []);
  t.false(fs.existsSync(path.dirname(pinDir)), 'no pins of ours left on bpffs');
  const r = await dial(names.nsA, addr.real, fx!.real.port);
  t.is(r.accept, undefined);
  t.is(r.end?.data, 'real\n');
});

kernelTest('cleanup() detaches and unpins what a crashed agent left behind', async (t) => {
  const opts = JSON.stringify(dpOptions({ pinDir: crashPinDir }));
  const agent = spawnInCgroup(fx!.proxyCg, undefined, `
    const { Datapath } = await import(process.env.NMT_DATAPATH_URL);
    await Datapath.open(JSON.parse(process.env.NMT_OPTS));
    process.stdout.write(JSON.stringify({ event: 'ready' }) + '\\n');
    setInterval(() => {}, 1000);
  `, { NMT_OPTS: opts });
  await agent.waitFor((e) => e.event === 'ready', 10_000);
  agent.proc.kill('SIGKILL');
  await agent.exited;
  t.is(bpftoolCgroup(fx!.podsCg).length, 5, 'the pinned links outlive the crashed agent');

  const removed = Datapath.cleanup(crashPinDir);
  t.deepEqual(removed.links.sort(), ['nm_connect4', 'nm_connect6', 'nm_getpeername4', 'nm_getpeername6', 'nm_getsockopt', 'nm_sockops']);
  t.deepEqual(removed.maps.sort(), ['nm_config', 'nm_liveness', 'nm_mesh_netns', 'nm_orig_by_cookie', 'nm_orig_by_tuple']);
  t.deepEqual(bpftoolCgroup(fx!.podsCg), []);
  t.deepEqual(bpftoolCgroup(fx!.proxyCg), []);
  t.false(fs.existsSync(path.dirname(crashPinDir)));
});

kernelTest('open() names a missing cgroup and where cgroup v2 is mounted', async (t) => {
  const err = await t.throwsAsync(Datapath.open(dpOptions({ podsCgroup: path.join(fx!.cg2, `nmt-dp-${id}-missing`) })));
  t.is((err as { code?: string }).code, 'NM_ERR_CGROUP');
  t.regex(err!.message, new RegExp(`nmt-dp-${id}-missing does not exist \\(cgroup v2 is mounted at ${fx!.cg2}\\)`));
});
