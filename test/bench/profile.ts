// Where the agents' CPU goes under load: the bench lab with its agents under
// --perf-basic-prof, a closed-loop load at one variant, and `perf record -g` of both agents
// meanwhile. Not part of `npm run bench` (profiling slows what it measures); run it before
// changing the hot path, and after, to see what moved.
//
//   node dist/test/bench/profile.js [--variant nm-l4] [--proto h1|h2|bulk] [--c 16] [--seconds 15] [--rate N] [--after V,…]
//
// --proto bulk profiles the bulk scenario's load instead (one TCP connection writing 256 KiB
// chunks through the variant's tcp port: an L4 variant, nm-l4 or nm-same-l4); it reports MB/s.
//
// --rate N profiles the suite's open-loop generator at N req/s (HTTP/1.1, c connections)
// instead of a closed loop: at 1,000 req/s an agent spends 3–4× the CPU per request it spends
// at saturation (every request wakes the event loop on its own), and that is where the
// latency scenario's CPU ratios come from.
//
// Writes into BENCH_OUT (default dist/bench-results/): per agent, its stacks folded
// (`profile-VARIANT-PROTO-NODE.folded`, Brendan Gregg's format) and a flame graph (.svg),
// and one Markdown page with each agent's hottest frames, self and inclusive
// (`profile-VARIANT-PROTO.md`). The agents' perf maps (/tmp/perf-PID.map) are removed after,
// and so are the logs --perf-basic-prof makes V8 write: every Node process of the lab leaves an
// isolate-*-v8.log in its working directory (the checkout), and Node refuses V8's --logfile in
// NODE_OPTIONS, so the ones that appear during the run are removed after it.
import { spawn } from 'node:child_process';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { packagePath } from '../../common/paths.js';
import { BenchLab } from './bench-lab.js';
import { bulk, h2load, openLoop, wrk } from './load-tools.js';
import { VARIANTS, type VariantId } from './settings.js';
import { flameGraphSvg } from './flame-graph.js';

const { values } = parseArgs({
  options: {
    variant: { type: 'string', default: 'nm-l4' },
    proto: { type: 'string', default: 'h1' },
    c: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '15' },
    rate: { type: 'string' },
    after: { type: 'string' },
  },
});
const variant = values.variant as VariantId;
if (!(variant in VARIANTS) || VARIANTS[variant].proxies !== 'agents')
  throw new Error(
    `--variant: one of ${Object.keys(VARIANTS)
      .filter((v) => VARIANTS[v as VariantId].proxies === 'agents')
      .join(', ')}`,
  );
if (values.proto !== 'h1' && values.proto !== 'h2' && values.proto !== 'bulk') throw new Error('--proto: h1, h2 or bulk');
const c = Number(values.c);
const seconds = Number(values.seconds);
const rate = values.rate === undefined ? undefined : Number(values.rate);
if (rate !== undefined && !(rate > 0)) throw new Error('--rate: requests per second, above 0');
if (rate !== undefined && values.proto !== 'h1') throw new Error('--rate: the open-loop generator speaks HTTP/1.1 (--proto h1)');
/** --after v1,v2: wrk c16 through these variants for 3 s each first (an agent that has carried other traffic) */
const after = (values.after ?? '').split(',').filter((v) => v !== '') as VariantId[];
for (const v of after) if (!(v in VARIANTS) || VARIANTS[v].proxies !== 'agents') throw new Error(`--after: ${v} is not a nodemesh variant`);
/** The load while recorded: closed loop (wrk, h2load), open loop at --rate, or bulk; resolves its req/s (bulk: MB/s). */
async function load(lab: BenchLab, secs: number): Promise<number> {
  if (values.proto === 'bulk') return (await bulk(lab, variant, secs)).mbPerSecond;
  if (rate !== undefined) return (await openLoop(lab, variant, { rate, seconds: secs, warmup: 0, connections: c })).achievedRps;
  return (await (values.proto === 'h1' ? wrk(lab, variant, c, secs) : h2load(lab, variant, c, secs))).rps;
}
const shape = values.proto === 'bulk' ? 'one connection' : rate === undefined ? `c${c}` : `${rate}rps`;
const unit = values.proto === 'bulk' ? 'MB/s' : 'req/s';
const out = process.env.BENCH_OUT ?? packagePath('dist', 'bench-results');
const log = (m: string) => process.stderr.write(`[profile ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

/** Runs a command to its end; rejects on a non-zero exit, with its stderr's tail. */
function run(argv: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr.slice(-500)}`));
    });
  });
}

/** `perf script` output → folded stacks (root first) per pid, with their sample counts. */
export function foldPerfScript(text: string): Map<number, Map<string, number>> {
  const byPid = new Map<number, Map<string, number>>();
  for (const block of text.split(/\n\s*\n/)) {
    const lines = block.split('\n').filter((l) => l.trim() !== '');
    const head = /^\S.*?\s(\d+)(?:\/\d+)?\s/.exec(lines[0] ?? '');
    if (!head) continue;
    const frames = lines
      .slice(1)
      .map((l) => /^\s*[0-9a-f]+\s+(.*?)(?:\+0x[0-9a-f]+)?\s+\((.*)\)\s*$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => (m[1] === '[unknown]' ? `[${path.basename(m[2]!)}]` : m[1]!).replace(/;/g, ','));
    if (frames.length === 0) continue;
    const pid = Number(head[1]);
    const stacks = byPid.get(pid) ?? new Map<string, number>();
    byPid.set(pid, stacks);
    const key = frames.reverse().join(';');
    stacks.set(key, (stacks.get(key) ?? 0) + 1);
  }
  return byPid;
}

/** The hottest frames of folded stacks: self (leaf) and inclusive shares. */
function topFrames(stacks: Map<string, number>, n: number): { self: [string, number][]; inclusive: [string, number][]; total: number } {
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  for (const [stack, count] of stacks) {
    total += count;
    const frames = stack.split(';');
    self.set(frames.at(-1)!, (self.get(frames.at(-1)!) ?? 0) + count);
    for (const f of new Set(frames)) incl.set(f, (incl.get(f) ?? 0) + count);
  }
  const top = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  return { self: top(self), inclusive: top(incl), total };
}

/**
 * Where the samples fall, by kind: inside a system call (the kernel's network stack and
 * epoll, the receiver's softirq work included: veth delivers in the sender's context), else
 * by the leaf frame — JavaScript, V8's builtins and runtime (inline caches, allocation, GC),
 * Node's C++ (streams, TLS and HTTP/2 glue), OpenSSL's ciphers, nghttp2, the C library
 * (malloc), anything else. Frame names only: a heuristic, good for comparing two profiles.
 */
function sampleKinds(stacks: Map<string, number>): [string, number][] {
  const kinds = new Map<string, number>();
  for (const [stack, count] of stacks) {
    const frames = stack.split(';');
    const leaf = frames.at(-1)!;
    const kind = frames.some((f) => f.startsWith('do_syscall_64') || f.startsWith('entry_SYSCALL'))
      ? 'kernel: system calls'
      : leaf.startsWith('JS:')
        ? 'JavaScript'
        : leaf.startsWith('Builtins_') || leaf.startsWith('v8::') || leaf.startsWith('Heap')
          ? 'V8 builtins and runtime'
          : leaf.startsWith('node::') || leaf.startsWith('uv_') || leaf.startsWith('uv__')
            ? "Node's and libuv's C++"
            : /aes|gcm|sha|EVP_|ssl|tls1?_/i.test(leaf)
              ? 'OpenSSL'
              : leaf.startsWith('nghttp2')
                ? 'nghttp2'
                : /^(_int_|malloc|free|cfree|__libc|__memmove|__memcpy|__memset|unlink_chunk|malloc_consolidate)/.test(leaf)
                  ? 'C library (malloc, memcpy)'
                  : 'other (kernel interrupts, unresolved)';
    kinds.set(kind, (kinds.get(kind) ?? 0) + count);
  }
  return [...kinds].sort((a, b) => b[1] - a[1]);
}

async function main(): Promise<void> {
  await mkdir(out, { recursive: true });
  // the agents inherit the lab's environment: V8 writes /tmp/perf-PID.map for perf (so do
  // the lab's other Node processes; every map that appears is removed at the end)
  const perfMaps = async () => new Set((await readdir('/tmp')).filter((f) => /^perf-\d+\.map$/.test(f)));
  const mapsBefore = await perfMaps();
  // and each writes an isolate-ADDRESS-PID-v8.log where it runs (Node allows neither --logfile
  // nor --no-log-code in NODE_OPTIONS): the ones that appear are removed at the end
  const logDirs = [...new Set([process.cwd(), packagePath()])];
  const v8Logs = async () => {
    const found = new Set<string>();
    for (const dir of logDirs)
      for (const f of await readdir(dir).catch(() => [] as string[])) if (/^isolate-0x[0-9a-f]+-.*v8\.log$/.test(f)) found.add(path.join(dir, f));
    return found;
  };
  const logsBefore = await v8Logs();
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --perf-basic-prof --interpreted-frames-native-stack`.trim();
  const name = `profile-${variant}-${values.proto}${rate === undefined ? '' : `-${rate}rps`}${after.length ? `-after-${after.join('+')}` : ''}`;
  const data = path.join(out, `${name}.perf.data`);
  let lab: BenchLab | undefined;
  try {
    lab = await BenchLab.up({ haproxyThreads: 1, heldConnections: 0 });
    delete process.env.NODE_OPTIONS;
    const pids = await lab.agentPids();
    for (const v of after) {
      log(`first, wrk c16 through ${v} for 3 s`);
      await wrk(lab, v, 16, 3);
    }
    // warm the path (JIT, pools, certificates) before recording
    log(`warming ${variant} (${values.proto}, ${shape})`);
    await load(lab, 3);
    log(`recording both agents for ${seconds} s under load`);
    const pidList = Object.values(pids).join(',');
    const perf = run(
      ['perf', 'record', '-F', '499', '-g', '-p', pidList, '-o', data, '--', 'sleep', String(seconds)],
      (seconds + 60) * 1000,
    );
    const rps = await load(lab, seconds);
    await perf;
    log(`${Math.round(rps)} ${unit} during the recording; folding the stacks`);
    const folded = foldPerfScript(await run(['perf', 'script', '-F', 'comm,pid,tid,time,event,ip,sym,dso', '-i', data], 300_000));
    const md = [
      `# Profile of the agents: ${VARIANTS[variant].label}, ${values.proto === 'bulk' ? 'bulk TCP, one connection' : rate !== undefined ? `open loop (HTTP/1.1) at ${rate} req/s over ${c} connections` : `${values.proto === 'h1' ? 'wrk (HTTP/1.1)' : 'h2load (HTTP/2)'} c${c}`}, ${seconds} s`,
      '',
      `${Math.round(rps)} ${unit} while recorded (perf record -F 499 -g; agents under --perf-basic-prof, which slows them).`,
      '',
      "JavaScript frames carry V8's names (`*` optimized, `^` baseline, `~` interpreted). An interpreted frame's name can be stale: V8 reuses the addresses of code it freed and the perf map only grows, so a module's top level in the middle of a hot stack is such a frame. `pvm_irq_enable` is this VM's interrupt path (the network stack's softirqs).",
      '',
    ];
    for (const [node, pid] of Object.entries(pids)) {
      const stacks = folded.get(pid) ?? new Map<string, number>();
      const file = `${name}-${node}`;
      await writeFile(path.join(out, `${file}.folded`), [...stacks].map(([s, n]) => `${s} ${n}`).join('\n') + '\n');
      await writeFile(
        path.join(out, `${file}.svg`),
        flameGraphSvg(stacks, `agent ${node} — ${VARIANTS[variant].label}, ${values.proto} ${shape}`),
      );
      const t = topFrames(stacks, 25);
      const pct = (n: number) => `${((100 * n) / Math.max(1, t.total)).toFixed(1)} %`;
      md.push(`## Agent ${node} (pid ${pid}, ${t.total} samples; flame graph ${file}.svg)`, '', '| share | kind of code |', '| ---: | --- |');
      for (const [k, n] of sampleKinds(stacks)) md.push(`| ${pct(n)} | ${k} |`);
      md.push('', '| self | frame |', '| ---: | --- |');
      for (const [f, n] of t.self) md.push(`| ${pct(n)} | \`${f.slice(0, 160)}\` |`);
      md.push('', '| inclusive | frame |', '| ---: | --- |');
      for (const [f, n] of t.inclusive) md.push(`| ${pct(n)} | \`${f.slice(0, 160)}\` |`);
      md.push('');
    }
    await writeFile(path.join(out, `${name}.md`), md.join('\n'));
    log(`wrote ${path.join(out, name)}.md, .folded and .svg per agent`);
  } finally {
    delete process.env.NODE_OPTIONS;
    await lab?.down();
    await rm(data, { force: true });
    await rm(`${data}.old`, { force: true });
    for (const f of await perfMaps()) if (!mapsBefore.has(f)) await rm(path.join('/tmp', f), { force: true });
    for (const f of await v8Logs()) if (!logsBefore.has(f)) await rm(f, { force: true });
  }
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  main().catch((err: Error) => {
    log(`failed: ${err.stack ?? err.message}`);
    process.exitCode = 1;
  });
}
