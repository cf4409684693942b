// `npm run mutate [module…]`: mutation testing of the decision modules with StrykerJS, a kept
// measurement beside the suite (never part of `npm test`). Stryker plants one small bug at a
// time in a module's source (a flipped comparison, a removed statement, a constant changed)
// and runs that module's unit tests against each: a bug no test notices ("survived") is a
// branch the suite does not check.
//
// The runner is Stryker's command runner over ava on the compiled tests: Stryker copies the
// repository to a sandbox (.stryker-tmp/), instruments every mutant of the module into its
// TypeScript at once (mutant schemata), builds it once with tsc, then runs the module's test
// files once per mutant with the mutant chosen by an environment variable. No ava plugin
// exists for Stryker, and ava runs our compiled dist/ anyway; per-test coverage is not
// available to the command runner, so each mutant runs the whole of its module's tests —
// kept small by scoping every module to its own test files. Modules run one at a time
// (2 shared cores); `STRYKER_CONCURRENCY` sets the parallel test processes (default 1),
// `STRYKER_TIMEOUT_MS` the time a mutant's run may take beyond its usual (default 15 s).
//
// Writes test/mutation/results/<module>.json (date, counts, score, survivors) and regenerates
// test/mutation/report.md from all of them. A survivor is either killed by a new test or
// listed in equivalent-mutants.ts with the reason it cannot be told apart from the original.
import { Stryker } from '@stryker-mutator/core';
import type { LogLevel, MutantResult } from '@stryker-mutator/api/core';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../common/paths.js';
import { EQUIVALENT, type Equivalent } from './equivalent-mutants.js';

interface Module {
  /** source files mutated */
  mutate: string[];
  /** unit test files (test/unit/<name>.test.ts) run against each mutant */
  tests: string[];
}

/** The decision modules and the tests that speak for them. */
export const MODULES: Record<string, Module> = {
  authorization: {
    mutate: ['agent/policy/authorization.ts', 'agent/policy/authorization-match.ts'],
    tests: ['authorization', 'authorization-match'],
  },
  'peer-authentication': {
    mutate: ['agent/policy/peer-authentication.ts', 'control/compile/security.ts'],
    tests: ['peer-authentication', 'authorization', 'security-compile', 'security-validation'],
  },
  'route-match': { mutate: ['agent/l7/route-match.ts'], tests: ['route-match'] },
  'weighted-picker': { mutate: ['agent/l7/weighted-picker.ts'], tests: ['weighted-picker'] },
  retry: { mutate: ['agent/l7/retry.ts', 'agent/cluster/retry-budget.ts'], tests: ['retry-budget'] },
  'outlier-detection': { mutate: ['agent/cluster/outlier-detection.ts'], tests: ['outlier-detection'] },
  'load-balancer': { mutate: ['agent/cluster/load-balancer/*.ts'], tests: ['load-balancer', 'load-balancer-registry'] },
  fairness: { mutate: ['agent/cluster/per-workload-fairness.ts'], tests: ['per-workload-fairness'] },
  'protocol-detect': { mutate: ['agent/transport/protocol-detect.ts'], tests: ['protocol-detect'] },
  'header-ops': { mutate: ['agent/l7/header-ops.ts'], tests: ['header-ops'] },
};

const ROOT = packageRoot();
const OUT = path.join(ROOT, 'test', 'mutation');
const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);

export interface Survivor {
  file: string;
  line: number;
  column: number;
  mutator: string;
  original: string;
  replacement: string;
  /** why it is equivalent (from equivalent-mutants.ts); absent: a test is missing */
  equivalent?: string;
}

export interface ModuleResult {
  module: string;
  date: string;
  files: string[];
  tests: string[];
  mutants: number;
  killed: number;
  timeout: number;
  survived: number;
  noCoverage: number;
  /** mutants that do not compile or crash at load: not counted */
  errors: number;
  /** Stryker's mutation score: detected / (detected + undetected), in % */
  score: number;
  survivors: Survivor[];
}

function sourceText(file: string, r: MutantResult): string {
  const lines = fs.readFileSync(path.join(ROOT, file), 'utf8').split('\n');
  const { start, end } = r.location;
  // Stryker's locations: lines 1-based, columns 1-based
  if (start.line === end.line) return lines[start.line - 1]!.slice(start.column - 1, end.column - 1);
  const first = lines[start.line - 1]!.slice(start.column - 1);
  const last = lines[end.line - 1]!.slice(0, end.column - 1);
  return [first, ...lines.slice(start.line, end.line - 1), last].join('\n');
}

/** The explanation that matches a survivor: same file and mutator, same original and replacement text. */
function explain(s: Omit<Survivor, 'equivalent'>): Equivalent | undefined {
  const squash = (x: string) => x.replace(/\s+/g, ' ').trim();
  return EQUIVALENT.find(
    (e) =>
      e.file === s.file &&
      e.mutator === s.mutator &&
      squash(e.original) === squash(s.original) &&
      squash(e.replacement) === squash(s.replacement) &&
      (e.line === undefined || e.line === s.line),
  );
}

async function run(name: string, m: Module): Promise<ModuleResult> {
  const tests = m.tests.map((t) => `dist/test/unit/${t}.test.js`);
  const reportDir = path.join(ROOT, '.stryker-tmp', 'reports');
  fs.mkdirSync(reportDir, { recursive: true });
  const stryker = new Stryker({
    mutate: m.mutate,
    testRunner: 'command',
    // ava's own CLI (no npx in between); --fail-fast: the first failing test kills the mutant
    commandRunner: { command: `node node_modules/ava/entrypoints/cli.mjs --fail-fast ${tests.join(' ')}` },
    buildCommand: `bash test/mutation/sandbox-build.sh ${fs.realpathSync(path.join(ROOT, 'node_modules'))}`,
    coverageAnalysis: 'off',
    // the instrumented sources do not type-check; tsc still emits them
    disableTypeChecks: '{agent,control,common}/**/*.ts',
    ignorePatterns: ['dist', 'build', '.stryker-tmp', 'test/mutation/results', 'test/mutation/report.md', '*.log'],
    concurrency: Number(process.env.STRYKER_CONCURRENCY ?? 1),
    // a loaded machine slows every run: time out only on a mutant that really hangs
    // a mutant's run is cut after its unmutated time × 2 + this (STRYKER_TIMEOUT_MS): raise it on a
    // busy machine, where a slow run would otherwise count as a mutant killed by a timeout
    timeoutMS: Number(process.env.STRYKER_TIMEOUT_MS ?? 15_000),
    timeoutFactor: 2,
    reporters: ['clear-text', 'json', 'html', 'progress-append-only'],
    jsonReporter: { fileName: path.join(reportDir, `${name}.json`) },
    htmlReporter: { fileName: path.join(reportDir, `${name}.html`) },
    clearTextReporter: { allowColor: false, logTests: false, reportMutants: false, reportScoreTable: true },
    tempDirName: '.stryker-tmp',
    cleanTempDir: true,
    logLevel: 'info' as LogLevel,
    fileLogLevel: 'off' as LogLevel,
  });
  const results = await stryker.runMutationTest();
  const count = (statuses: Set<string>) => results.filter((r) => statuses.has(r.status)).length;
  const detected = count(DETECTED);
  const undetected = count(UNDETECTED);
  const survivors: Survivor[] = results
    .filter((r) => UNDETECTED.has(r.status))
    .map((r) => {
      const file = path.relative(ROOT, path.resolve(ROOT, r.fileName));
      const s = { file, line: r.location.start.line, column: r.location.start.column, mutator: r.mutatorName, original: sourceText(file, r), replacement: r.replacement ?? '' };
      const e = explain(s);
      return e ? { ...s, equivalent: e.reason } : s;
    })
    .sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column);
  return {
    module: name,
    date: new Date().toISOString().slice(0, 10),
    files: [...new Set(results.map((r) => path.relative(ROOT, path.resolve(ROOT, r.fileName))))].sort(),
    tests: tests.map((t) => t.replace(/^dist\//, '').replace(/\.js$/, '.ts')),
    mutants: results.length,
    killed: count(new Set(['Killed'])),
    timeout: count(new Set(['Timeout'])),
    survived: count(new Set(['Survived'])),
    noCoverage: count(new Set(['NoCoverage'])),
    errors: count(new Set(['CompileError', 'RuntimeError'])),
    score: detected + undetected === 0 ? 100 : Math.round((1000 * detected) / (detected + undetected)) / 10,
    survivors,
  };
}

function report(results: ModuleResult[]): string {
  const out: string[] = [];
  const pct = (n: number) => `${n.toFixed(1)} %`;
  const unexplained = results.flatMap((r) => r.survivors.filter((s) => !s.equivalent));
  out.push('# Mutation testing of the decision modules');
  out.push('');
  out.push('Written by `npm run mutate` (test/mutation/mutate.ts), one section per module, each with the date it was');
  out.push("last measured. Score: Stryker's, mutants killed (or timed out) over mutants that compiled and loaded.");
  out.push('"explained" survivors are equivalent mutants: the reason each cannot be told apart from the original is');
  out.push('given with it (test/mutation/equivalent-mutants.ts); any other survivor is a missing test.');
  out.push('');
  out.push('| module | measured | mutants | killed | timed out | survived (explained) | errors | score |');
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) {
    const explained = r.survivors.filter((s) => s.equivalent).length;
    out.push(
      `| ${r.module} | ${r.date} | ${r.mutants} | ${r.killed} | ${r.timeout} | ${r.survived + r.noCoverage} (${explained}) | ${r.errors} | ${pct(r.score)} |`,
    );
  }
  const all = results.reduce((a, r) => ({ d: a.d + r.killed + r.timeout, u: a.u + r.survived + r.noCoverage }), { d: 0, u: 0 });
  out.push(`| **all** | | | | | | | **${pct(all.d + all.u === 0 ? 100 : (100 * all.d) / (all.d + all.u))}** |`);
  out.push('');
  out.push(unexplained.length === 0 ? 'Every survivor is explained below.' : `**${unexplained.length} survivors are not explained: tests are missing.**`);
  for (const r of results) {
    out.push('');
    out.push(`## ${r.module} (${r.date})`);
    out.push('');
    out.push(`Mutated: ${r.files.map((f) => `\`${f}\``).join(', ')}. Tests: ${r.tests.map((f) => `\`${f}\``).join(', ')}.`);
    if (r.survivors.length === 0) {
      out.push('');
      out.push('No survivor.');
      continue;
    }
    for (const s of r.survivors) {
      out.push('');
      const code = (x: string) => `\`${x.replace(/\s+/g, ' ').trim().replace(/`/g, "'")}\``;
      out.push(`- \`${s.file}:${s.line}:${s.column}\` ${s.mutator}: ${code(s.original)} → ${code(s.replacement)}`);
      out.push(`  ${s.equivalent ? `Equivalent: ${s.equivalent}` : '**Not explained: a test is missing.**'}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** ../shared/conformance beside this checkout or beside the main checkout of a worktree. */
function conformanceSamples(): string | undefined {
  const beside = (dir: string) => path.resolve(dir, '..', 'shared', 'conformance');
  const candidates = [beside(ROOT)];
  try {
    // a worktree's common git dir is the main checkout's .git
    const common = execFileSync('git', ['rev-parse', '--path-format=absolute', '--git-common-dir'], { cwd: ROOT, encoding: 'utf8' }).trim();
    candidates.push(beside(path.dirname(common)));
  } catch {
    // not a git checkout (a tarball): only the first place
  }
  return candidates.find((c) => fs.existsSync(c));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  // --report: only rewrite report.md from the kept results (after a survivor was explained)
  const reportOnly = args.includes('--report');
  const asked = args.filter((a) => a !== '--report');
  for (const a of asked) if (!MODULES[a]) throw new Error(`unknown module ${a}; modules: ${Object.keys(MODULES).join(', ')}`);
  // the upstream samples the authorization and peer-authentication tests read: beside this
  // checkout, or beside the main checkout when this is a git worktree; never beside the
  // sandbox (as test/helpers/conformance-samples.ts would look)
  const samples = conformanceSamples();
  if (!process.env.NODEMESH_CONFORMANCE_DIR && samples) process.env.NODEMESH_CONFORMANCE_DIR = samples;
  const resultsDir = path.join(OUT, 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  for (const name of reportOnly ? [] : asked.length > 0 ? asked : Object.keys(MODULES)) {
    process.stdout.write(`\n=== mutating ${name} ===\n`);
    const r = await run(name, MODULES[name]!);
    fs.writeFileSync(path.join(resultsDir, `${name}.json`), `${JSON.stringify(r, null, 2)}\n`);
    process.stdout.write(`${name}: ${r.score} % (${r.survivors.filter((s) => !s.equivalent).length} survivors not explained)\n`);
  }
  const all = Object.keys(MODULES)
    .map((m) => path.join(resultsDir, `${m}.json`))
    .filter((f) => fs.existsSync(f))
    .map((f) => JSON.parse(fs.readFileSync(f, 'utf8')) as ModuleResult);
  // survivors explained since the module was measured get their reason
  for (const r of all) r.survivors = r.survivors.map((s) => ({ ...s, equivalent: explain(s)?.reason }));
  fs.writeFileSync(path.join(OUT, 'report.md'), report(all));
}

await main();
