// The house as ARCHITECTURE.md draws it, checked from the imports of every production file
// (type-only imports included): no import cycle anywhere; inside agent/ and control/ a
// folder imports only its own files and the layers below it; agent/ reaches control/ only
// through the contract (control/api/); common/ and control/api/ stand on nothing above them.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../common/paths.js';

const ROOT = packageRoot();
const PRODUCTION = ['common', 'agent', 'control', 'cli', 'deploy'];

/**
 * Layers, top first. A file may import files of its own layer entry (the same folder, or a
 * top-level file itself) and of any entry on a later line; entries on one line are siblings
 * and import nothing of each other.
 */
const AGENT_LAYERS = [
  // east-west-gateway.ts: the agent binary in gateway mode (issue 13), wiring as agent.ts is
  ['agent.ts', 'east-west-gateway.ts'],
  ['lifecycle', 'workers'],
  ['admin'],
  ['hbone'],
  ['proxy'],
  ['l7'],
  ['cluster'],
  ['transport'],
  ['state', 'identity', 'datapath'],
  ['policy'],
  ['telemetry'],
];
const CONTROL_LAYERS = [
  ['control-plane.ts'],
  ['admin'],
  // remote-clusters.ts: a store and a source per remote cluster (issue 13)
  ['discovery-server.ts', 'remote-clusters.ts'],
  ['config-store.ts', 'control-metrics.ts'],
  // analysis reads what validation kept and what the compiler resolves (hosts, Services)
  ['analyze'],
  // source/ reads the files, validate/ checks what was read: config-store.ts joins them, and
  // as siblings neither may import the other (validators know documents, not YAML)
  ['validate', 'compile', 'ca', 'source'],
  // kube/ is the API server client (informers, requests, leases): under the source and the CA
  ['model', 'kube'],
  ['api'],
];

/** Every relative import of a file (static, dynamic, type-only, re-export), as repo paths. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const out: string[] = [];
  const re = /(?:from\s+|import\s*\(\s*|import\s+)['"](\.{1,2}\/[^'"]+)['"]/g;
  for (const m of text.matchAll(re)) {
    const target = path.normalize(path.join(path.dirname(file), m[1]!)).replace(/\.js$/, '.ts');
    if (fs.existsSync(path.join(ROOT, target))) out.push(target);
  }
  return out;
}

function productionFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && e.name !== 'samples') walk(rel);
      } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(rel);
    }
  };
  for (const d of PRODUCTION) walk(d);
  return out.sort();
}

const files = productionFiles();
const graph = new Map(files.map((f) => [f, importsOf(f)]));

/** The layer entry of a file inside `top` ('agent' → 'l7' for agent/l7/exchange.ts, 'agent.ts' for agent/agent.ts). */
function entryOf(file: string, top: string): string | undefined {
  if (!file.startsWith(`${top}/`)) return undefined;
  return file.slice(top.length + 1).split('/')[0];
}

function layerViolations(top: string, layers: string[][]): string[] {
  const level = new Map<string, number>();
  layers.forEach((entries, i) => entries.forEach((e) => level.set(e, i)));
  const bad: string[] = [];
  for (const [file, deps] of graph) {
    const from = entryOf(file, top);
    if (from === undefined) continue;
    const fromLevel = level.get(from);
    if (fromLevel === undefined) {
      bad.push(`${file}: ${top}/${from} is in no layer of ARCHITECTURE.md`);
      continue;
    }
    for (const dep of deps) {
      const to = entryOf(dep, top);
      if (to === undefined || to === from) continue;
      const toLevel = level.get(to);
      if (toLevel === undefined || toLevel <= fromLevel) bad.push(`${file} imports ${dep}: ${top}/${from} may not import ${top}/${to}`);
    }
  }
  return bad;
}

test('no import cycle among the production files', (t) => {
  // Tarjan's strongly connected components: a component of more than one file is a cycle
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let n = 0;
  const visit = (v: string) => {
    index.set(v, n);
    low.set(v, n++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1 || graph.get(v)!.includes(v)) cycles.push(c.sort());
    }
  };
  for (const f of files) if (!index.has(f)) visit(f);
  t.deepEqual(cycles, []);
});

test('agent/: each folder imports only the layers below it', (t) => {
  t.deepEqual(layerViolations('agent', AGENT_LAYERS), []);
});

test('control/: each folder imports only the layers below it (compile/ never imports validate/)', (t) => {
  t.deepEqual(layerViolations('control', CONTROL_LAYERS), []);
});

test('agent/ imports nothing of control/ but the contract, control/api/', (t) => {
  const bad = [...graph].flatMap(([f, deps]) =>
    f.startsWith('agent/') ? deps.filter((d) => d.startsWith('control/') && !d.startsWith('control/api/')).map((d) => `${f} imports ${d}`) : [],
  );
  t.deepEqual(bad, []);
});

test('nothing but the CLI imports the agent, and control/ never does', (t) => {
  const bad = [...graph].flatMap(([f, deps]) =>
    f.startsWith('agent/') || f.startsWith('cli/') ? [] : deps.filter((d) => d.startsWith('agent/')).map((d) => `${f} imports ${d}`),
  );
  t.deepEqual(bad, []);
});

test('common/ stands alone, and control/api/ (the contract) stands on common/ only', (t) => {
  const bad = [...graph].flatMap(([f, deps]) => {
    if (f.startsWith('common/')) return deps.filter((d) => !d.startsWith('common/')).map((d) => `${f} imports ${d}`);
    if (f.startsWith('control/api/')) return deps.filter((d) => !d.startsWith('common/') && !d.startsWith('control/api/')).map((d) => `${f} imports ${d}`);
    return [];
  });
  t.deepEqual(bad, []);
});

test('the datapath is the only user of the native addon', (t) => {
  const users = files.filter((f) => /nodemesh_native\.node|createRequire\(/.test(fs.readFileSync(path.join(ROOT, f), 'utf8')));
  t.true(users.length > 0, 'the addon loader was not found');
  // elsewhere createRequire may load parts of npm packages (common/prometheus.ts: a package's
  // files without its index) and Node's own modules that ESM types do not name
  // (proxy/inbound-observed.ts: _http_common's llhttp binding), named as string literals:
  // never a path, never a .node file
  const requiresOnlyPackages = (f: string) => {
    const src = fs.readFileSync(path.join(ROOT, f), 'utf8');
    if (src.includes('nodemesh_native')) return false;
    const args = [...src.matchAll(/\brequire\(([^)]*)\)/g)].map((m) => m[1]!.trim());
    return args.length > 0 && args.every((a) => /^'(@[a-z0-9-]+\/)?[a-z0-9_-]+(\/[a-zA-Z0-9_-]+)*'$/.test(a));
  };
  t.deepEqual(
    users.filter((f) => !f.startsWith('agent/datapath/') && !requiresOnlyPackages(f)),
    [],
  );
});
