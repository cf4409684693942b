// Upstream YAML (Istio, Gateway API, Kubernetes samples) in <repo>/../shared/conformance,
// read in place: the control plane must accept every file as written. Istio and Gateway API
// kinds are accepted as "not yet applied" until they are compiled. The folder is not part of
// the repository; outside CI the tests skip when it is absent, in CI they fail.
import test from 'ava';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { startControlPlane } from '../control/control-plane.js';
import { parseYamlFile } from '../control/source-files.js';
import { ResourceStore } from '../control/store.js';
import { NOT_YET_APPLIED, compiledKind } from '../control/validate.js';

// this file runs from <repo>/dist/test/
const repo = fileURLToPath(new URL('../../', import.meta.url));
const dir = path.resolve(repo, '..', 'shared', 'conformance');

function yamlFiles(d: string): string[] {
  return readdirSync(d)
    .sort()
    .flatMap((name) => {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) return yamlFiles(p);
      return /\.ya?ml$/.test(name) ? [p] : [];
    });
}

if (!existsSync(dir)) {
  if (process.env.CI === 'true') {
    test('the conformance folder ../shared/conformance is present in CI', (t) => {
      t.fail(`${dir} is missing: CI must run with shared/ next to the repository`);
    });
  } else {
    test.skip(`conformance samples (${dir} is absent on this machine)`, () => {});
  }
} else {
  const files = yamlFiles(dir);

  test('the conformance folder holds upstream YAML to check', (t) => {
    t.true(files.length > 0, `no YAML under ${dir}`);
  });

  for (const file of files) {
    const rel = path.relative(dir, file);
    test(`accepts ${rel} as written`, (t) => {
      const parsed = parseYamlFile(file, readFileSync(file, 'utf8'));
      if ('error' in parsed) return t.fail(parsed.error.message);
      t.deepEqual(parsed.documentErrors.map((e) => e.message), []);
      // every non-empty document of the file, counted independently of nodemesh's parser
      const upstream = parseAllDocuments(readFileSync(file, 'utf8'))
        .map((d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string } } | null)
        .filter((d) => d !== null);
      t.is(parsed.documents.length, upstream.length);

      const result = new ResourceStore().apply({ files: [{ file, documents: parsed.documents, documentErrors: [] }] });
      t.deepEqual(result.fileErrors, []);
      t.deepEqual(
        result.statuses.filter((s) => s.state !== 'Accepted').map((s) => s.message),
        [],
      );
      for (const [i, s] of result.statuses.entries()) {
        t.is(`${s.apiVersion} ${s.kind} ${s.name}`, `${upstream[i]!.apiVersion} ${upstream[i]!.kind} ${upstream[i]!.metadata.name}`);
        // nothing silently ignored: kinds nodemesh does not compile yet say so
        if (compiledKind(s.apiVersion, s.kind)) t.false(s.message.includes(NOT_YET_APPLIED), `${s.resource}: ${s.message}`);
        else t.is(s.message, NOT_YET_APPLIED, `${s.resource}`);
      }
    });
  }

  test('the whole folder through a running control plane: no YAML, kind or field errors, and every Service in the snapshot', async (t) => {
    const cp = await startControlPlane({ configDir: dir, grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', rescanMs: 0, processMetrics: false });
    t.teardown(() => cp.close());
    const status = cp.status();
    t.deepEqual(status.fileErrors, []);
    // the samples are alternatives of one another (several `VirtualService reviews`): the
    // same name in two files is a conflict, and the only kind of rejection allowed here
    const other = status.resources.filter((s) => s.state === 'Rejected' && s.code !== 'NM_ERR_CONFIG_CONFLICT');
    t.deepEqual(other.map((s) => s.message), []);

    const services = files.flatMap((f) =>
      readFileSync(f, 'utf8')
        .split(/^---\s*$/m)
        .map((doc) => parseYaml(doc) as { kind?: string; metadata?: { name: string; namespace?: string }; spec?: { ports?: { port: number }[] } } | null)
        .filter((d) => d?.kind === 'Service'),
    );
    t.true(services.length > 0);
    const snap = cp.snapshot()!;
    for (const s of services) {
      const ns = s!.metadata!.namespace ?? 'default';
      const found = snap.services.find((x) => x.name === s!.metadata!.name && x.namespace === ns);
      t.truthy(found, `Service ${ns}/${s!.metadata!.name} in the snapshot`);
      t.deepEqual(found?.ports.map((p) => p.port), s!.spec!.ports!.map((p) => p.port));
      t.is(found?.hostname, `${s!.metadata!.name}.${ns}.svc.cluster.local`);
    }
  });
}
