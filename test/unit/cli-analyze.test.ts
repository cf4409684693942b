// `nodemesh analyze` and `nodemesh config status` as a user runs them: the real CLI binary
// as a child process, its stdout, stderr and exit code. Each analyzer code fires on the
// fixture that has its mistake (test/fixtures/analyze/CODE.yaml, read with base.yaml) and
// the correct configuration stays silent; the subset mistake is an Error with exit
// 1 before any traffic flows; three mistakes in one resource come out in one run.
import test from 'ava';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { packagePath } from '../../common/paths.js';
import type { AnalysisMessage } from '../../control/analyze/messages.js';
import { CODES } from '../../control/analyze/messages.js';
import { CONFORMANCE_DIR } from '../helpers/conformance-samples.js';
import { configDir, controlPlane } from '../helpers/control-plane.js';
import { existsSync } from 'node:fs';
import { nodemesh } from '../helpers/cli.js';

const FIXTURES = packagePath('test', 'fixtures', 'analyze');
const fixture = (name: string) => path.join(FIXTURES, name);

async function analyzeJson(...files: string[]): Promise<{ code: number; messages: AnalysisMessage[]; summary: { errors: number; warnings: number; infos: number } }> {
  const r = await nodemesh(['analyze', ...files.flatMap((f) => ['-f', f]), '-o', 'json']);
  const data = JSON.parse(r.stdout) as { messages: AnalysisMessage[]; summary: { errors: number; warnings: number; infos: number } };
  return { code: r.code, ...data };
}

test('the base workloads alone: no finding, exit 0', async (t) => {
  const r = await nodemesh(['analyze', '-f', fixture('base.yaml')]);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /No validation issues found/);
});

// fixture → the codes it must raise (and no others)
const FIRES: Record<string, string[]> = {
  'IST0101.yaml': ['IST0101'],
  'IST0106.yaml': ['IST0106'],
  'IST0108.yaml': ['IST0108'],
  'IST0109.yaml': ['IST0109'],
  'IST0127.yaml': ['IST0127'],
  // nodemesh does not originate TLS: the same fields are also "not applied"
  'IST0128.yaml': ['IST0128', 'IST0129', 'NM0105'],
  'IST0130.yaml': ['IST0130', 'IST0131'],
  'IST0173.yaml': ['IST0173', 'NM0106'],
  'IST0174.yaml': ['IST0174'],
  'NM0101.yaml': ['NM0101'],
  'NM0102.yaml': ['NM0102'],
  'NM0103.yaml': ['NM0103'],
  'NM0104.yaml': ['NM0104'],
  'NM0105.yaml': ['NM0105'],
  'NM0107.yaml': ['NM0107'],
};

for (const [file, codes] of Object.entries(FIRES)) {
  test(`analyze -f base.yaml -f ${file}: ${codes.join(', ')}, each with file:line, field and fix; exit 1 only on an Error`, async (t) => {
    const r = await analyzeJson(fixture('base.yaml'), fixture(file));
    t.deepEqual([...new Set(r.messages.map((m) => m.code))].sort(), [...codes].sort());
    for (const m of r.messages) {
      t.is(m.level, CODES[m.code as keyof typeof CODES].level, `${m.code} has its documented level`);
      t.true(m.file?.endsWith(file) && typeof m.line === 'number' && m.line > 0, `${m.code} at ${m.file}:${m.line}`);
      t.true(m.fix.length > 0 && m.message.length > 0 && m.resource.length > 0);
    }
    t.is(r.code, r.messages.some((m) => m.level === 'Error') ? 1 : 0);
    t.deepEqual(r.summary, {
      errors: r.messages.filter((m) => m.level === 'Error').length,
      warnings: r.messages.filter((m) => m.level === 'Warning').length,
      infos: r.messages.filter((m) => m.level === 'Info').length,
    });
  });
}

test("the issue's mistake (75 % to a subset no DestinationRule defines) is an Error naming the field and line, exit 1", async (t) => {
  const r = await nodemesh(['analyze', '-f', fixture('base.yaml'), '-f', fixture('IST0101.yaml')]);
  t.is(r.code, 1);
  t.regex(r.stdout, /^Error \[IST0101\] \(VirtualService shop\/reviews .*IST0101\.yaml:12\) field spec\.http\[0\]\.route\[1\]\.destination\.subset: Referenced host\+subset in DestinationRule not found: reviews\.shop\.svc\.cluster\.local\+v3/m);
  t.regex(r.stdout, /fix: use one of the subsets the DestinationRules of reviews\.shop\.svc\.cluster\.local define \(v1, v2\)/);
});

test('three mistakes in one resource come out in one run, each with its field and line', async (t) => {
  const r = await analyzeJson(fixture('base.yaml'), fixture('IST0106.yaml'));
  t.is(r.code, 1);
  t.deepEqual(
    r.messages.map((m) => [m.field, m.line]),
    [
      ['spec.http[0].retry', 10],
      ['spec.http[1].timeout', 13],
      ['spec.http[2].route[0].weight', 17],
    ],
  );
  t.regex(r.messages[0]!.message, /did you mean retries\?/);
});

test('-o yaml is the same data; --output-threshold and --failure-threshold filter and decide the exit code', async (t) => {
  const y = await nodemesh(['analyze', '-f', fixture('base.yaml'), '-f', fixture('NM0101.yaml'), '-o', 'yaml']);
  t.regex(y.stdout, /^summary:\n {2}errors: 0\n {2}warnings: 1/m);
  t.regex(y.stdout, /code: NM0101/);
  t.is(y.code, 0, 'a Warning does not fail by default');
  const strict = await nodemesh(['analyze', '-f', fixture('base.yaml'), '-f', fixture('NM0101.yaml'), '--failure-threshold', 'Warning']);
  t.is(strict.code, 1);
  const quiet = await nodemesh(['analyze', '-f', fixture('base.yaml'), '-f', fixture('IST0130.yaml'), '--output-threshold', 'Warning', '-o', 'json']);
  t.deepEqual((JSON.parse(quiet.stdout) as { messages: AnalysisMessage[] }).messages.map((m) => m.code), ['IST0130']);
});

const NETWORKING = path.join(CONFORMANCE_DIR, 'networking');
const bookinfoTest = existsSync(NETWORKING) ? test : process.env.CI === 'true' ? test : test.skip;
bookinfoTest("Istio's bookinfo samples with their Services, pods and DestinationRule: no Error or Warning (only the sample's own unreachable rule)", async (t) => {
  if (!existsSync(NETWORKING)) return t.fail(`${NETWORKING} is missing`);
  const dr = path.join(NETWORKING, 'bookinfo-destination-rule-all-mtls.yaml');
  for (const sample of ['bookinfo-virtual-service-all-v1.yaml', 'bookinfo-virtual-service-reviews-50-v3.yaml', 'bookinfo-virtual-service-reviews-90-10.yaml', 'bookinfo-virtual-service-ratings-test-delay.yaml', 'istio-io-request-timeout-virtual-service.yaml', 'istio-io-retries-virtual-service.yaml']) {
    const r = await analyzeJson(fixture('bookinfo.yaml'), dr, path.join(NETWORKING, sample));
    t.deepEqual(r.messages.filter((m) => m.level !== 'Info').map((m) => `${m.code} ${m.field}`), [], sample);
    t.is(r.code, 0, sample);
  }
  // its first rule has no match: the second (the same route without the fault) is never used, as istioctl analyze says too
  const fault = await analyzeJson(fixture('bookinfo.yaml'), path.join(NETWORKING, 'bookinfo-fault-injection-details-v1.yaml'));
  t.deepEqual(fault.messages.map((m) => `${m.code} ${m.field}`), ['IST0130 spec.http[1]']);
  const text = await readFile(path.join(NETWORKING, 'bookinfo-fault-injection-details-v1.yaml'), 'utf8');
  t.regex(text, /http:\n {2}- fault:/, 'the sample is still the one whose first rule has no match');
});

test('`config status` of a running control plane: the analysis is in the JSON and an Error makes the exit code 1', async (t) => {
  const base = await readFile(fixture('base.yaml'), 'utf8');
  const dir = await configDir(t, { 'base.yaml': base, 'routes.yaml': await readFile(fixture('IST0101.yaml'), 'utf8') });
  const cp = await controlPlane(t, { configDir: dir });
  const r = await nodemesh(['config', 'status', '--control', `127.0.0.1:${cp.adminPort}`, '-o', 'json']);
  t.is(r.code, 1, r.stderr);
  const status = JSON.parse(r.stdout) as { analysis: AnalysisMessage[]; summary: { analysis: { errors: number } }; resources: unknown[] };
  t.true(status.analysis.some((m) => m.code === 'IST0101' && m.field === 'spec.http[0].route[1].destination.subset'));
  t.is(status.summary.analysis.errors, 2);
  const table = await nodemesh(['config', 'status', '--control', `127.0.0.1:${cp.adminPort}`]);
  t.is(table.code, 1);
  t.regex(table.stdout, /^analysis:\nError \[IST0101\]/m);

  const clean = await controlPlane(t, { configDir: await configDir(t, { 'base.yaml': base }) });
  const ok = await nodemesh(['config', 'status', '--control', `127.0.0.1:${clean.adminPort}`]);
  t.is(ok.code, 0, ok.stdout);
});

test('`config status` lists every error of a rejected resource under its row', async (t) => {
  const dir = await configDir(t, { 'base.yaml': await readFile(fixture('base.yaml'), 'utf8'), 'vs.yaml': await readFile(fixture('IST0106.yaml'), 'utf8') });
  const cp = await controlPlane(t, { configDir: dir });
  const r = await nodemesh(['config', 'status', '--control', `127.0.0.1:${cp.adminPort}`]);
  t.is(r.code, 1);
  t.regex(r.stdout, /^VirtualService\s+shop\/reviews\s+Rejected\s+NM_ERR_CONFIG_FIELD: .*spec\.http\[0\]\.retry/m);
  t.regex(r.stdout, /^ {4}also field spec\.http\[1\]\.timeout \(line 13\): "soon" is not a duration/m);
  t.regex(r.stdout, /^ {4}also field spec\.http\[2\]\.route\[0\]\.weight \(line 17\)/m);
});
