// Bad configuration as a specification: every error names the file, the resource and the
// field, is counted, never stops the control plane, never half-applies, and leaves the last
// good state in force. These tests run a real control plane on a temp directory.
import test, { type ExecutionContext } from 'ava';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { ControlPlane } from '../../control/control-plane.js';
import { printConfigStatus } from '../../cli/config-status.js';
import { parseYamlFile } from '../../control/source/files.js';
import { validateDocument } from '../../control/validate/validate.js';
import { configDir, controlPlane } from '../helpers/control-plane.js';

interface Running {
  cp: ControlPlane;
  dir: string;
  write(name: string, text: string): Promise<void>;
  admin(p: string): Promise<{ status: number; body: string }>;
}

async function running(t: ExecutionContext, files: Record<string, string>): Promise<Running> {
  const dir = await configDir(t, files);
  const cp = await controlPlane(t, { configDir: dir, rescanMs: 0, debounceMs: 10_000 });
  return {
    cp,
    dir,
    write: (name, text) => writeFile(path.join(dir, name), text),
    admin: async (p) => {
      const res = await fetch(`http://127.0.0.1:${cp.adminPort}${p}`);
      return { status: res.status, body: await res.text() };
    },
  };
}

const WEB_SERVICE = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  clusterIP: 10.96.0.20
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
`;

const pod = (name: string, ip: string) => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: shop
  labels: {app: web}
spec:
  nodeName: node-a
  containers:
  - name: main
status:
  podIP: ${ip}
  phase: Running
`;

function webEndpoints(cp: ControlPlane): string[] {
  const web = cp.snapshot()!.services.find((s) => s.name === 'web');
  return web ? web.ports.flatMap((p) => p.endpoints.map((e) => `${e.workload}:${p.port}->${e.port}`)) : [];
}

test('a file that is not valid YAML is NM_ERR_CONFIG_YAML naming the file and the line, and its resources stay in force', async (t) => {
  const r = await running(t, { 'web.yaml': `${WEB_SERVICE}---\n${pod('web-1', '10.1.0.2')}` });
  const before = r.cp.snapshot()!;
  t.deepEqual(webEndpoints(r.cp), ['shop/web-1:80->8080']);

  await r.write('web.yaml', 'apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n spec: broken-indent\n');
  await r.cp.rescan();

  const { fileErrors } = r.cp.status();
  t.is(fileErrors.length, 1);
  t.is(fileErrors[0]!.code, 'NM_ERR_CONFIG_YAML');
  t.is(fileErrors[0]!.file, path.join(r.dir, 'web.yaml'));
  t.is(fileErrors[0]!.line, 5);
  t.true(fileErrors[0]!.message.startsWith(`${path.join(r.dir, 'web.yaml')}:5: not valid YAML`), fileErrors[0]!.message);
  t.is(r.cp.snapshot(), before, 'nothing changed: the last good resources of the file stay in force');
  t.is((await r.admin('/healthz/ready')).status, 200);
  t.is((await r.admin('/healthz/live')).status, 200, 'the liveness probe answers');
});

test('an unknown kind is NM_ERR_CONFIG_KIND naming the file and the resource', async (t) => {
  const r = await running(t, { 'typo.yaml': WEB_SERVICE.replace('kind: Service', 'kind: Servce') });
  const [status] = r.cp.status().resources;
  t.is(status!.state, 'Rejected');
  t.is(status!.code, 'NM_ERR_CONFIG_KIND');
  t.is(status!.resource, 'Servce shop/web');
  t.true(status!.message.startsWith(`${path.join(r.dir, 'typo.yaml')}:1: Servce shop/web: unknown kind Servce in apiVersion v1`), status!.message);
  t.deepEqual(r.cp.snapshot()!.services, []);
});

test('a Service losing its ports is NM_ERR_CONFIG_FIELD on spec.ports; its last good version stays and other resources still apply', async (t) => {
  const r = await running(t, { 'svc.yaml': WEB_SERVICE, 'pods.yaml': pod('web-1', '10.1.0.2') });
  const v1 = r.cp.snapshot()!.version;

  await r.write('svc.yaml', WEB_SERVICE.replace(/  ports:\n  - port: 80\n    targetPort: 8080\n/, ''));
  await r.write('pods.yaml', `${pod('web-1', '10.1.0.2')}---\n${pod('web-2', '10.1.0.3')}`);
  await r.cp.rescan();

  const web = r.cp.status().resources.find((s) => s.resource === 'Service shop/web')!;
  t.is(web.state, 'Rejected');
  t.is(web.code, 'NM_ERR_CONFIG_FIELD');
  t.true(web.servingLastGood);
  t.regex(web.message, new RegExp(`^${escape(path.join(r.dir, 'svc.yaml'))}:1: Service shop/web: field spec.ports: expected at least one port`));
  const snap = r.cp.snapshot()!;
  t.is(snap.version, v1 + 1);
  t.deepEqual(webEndpoints(r.cp), ['shop/web-1:80->8080', 'shop/web-2:80->8080'], 'the last good web (port 80) with the new pod');
});

test('field errors name the field path and its line and say what is expected', (t) => {
  const cases: [string, string, RegExp][] = [
    [WEB_SERVICE.replace('- port: 80', '- port: 70000'), 'spec.ports[0].port', /:11: Service shop\/web: field spec\.ports\[0\]\.port: expected an integer 1-65535, found 70000/],
    [WEB_SERVICE.replace('targetPort: 8080', 'targetPort: "8080"'), 'spec.ports[0].targetPort', /quoted number: write it unquoted/],
    [WEB_SERVICE.replace('app: web', 'app: true'), 'spec.selector.app', /:9: .*expected a string, found true \(a boolean; quote it/],
    [WEB_SERVICE.replace('clusterIP: 10.96.0.20', 'clusterIP: 10.96.0.300'), 'spec.clusterIP', /expected an IPv4 address or "None"/],
    [WEB_SERVICE.replace('  - port: 80\n', '  - port: 80\n  - port: 81\n'), 'spec.ports[0].name', /is required when a Service has more than one port/],
    [pod('p', '10.1.0.999'), 'status.podIP', /Pod shop\/p: field status\.podIP: expected an IP address/],
    [pod('p', '10.1.0.2').replace('  - name: main\n', ''), 'spec.containers', /expected at least one container/],
    [pod('p', '10.1.0.2').replace('labels: {app: web}', 'labels: {"nodemesh.io/mesh": 1}'), 'metadata.labels["nodemesh.io/mesh"]', /expected a string, found 1/],
  ];
  for (const [text, field, message] of cases) {
    const parsed = parseYamlFile('/config/x.yaml', text);
    if ('error' in parsed) return t.fail(parsed.error.message);
    const result = validateDocument(parsed.documents[0]!);
    if (result.ok) return t.fail(`accepted: ${field}`);
    t.is(result.error.code, 'NM_ERR_CONFIG_FIELD');
    t.is(result.error.location.field, field);
    t.regex(result.error.message, message);
  }
});

test('two files defining the same resource: the later in path order is NM_ERR_CONFIG_CONFLICT, the first applies', async (t) => {
  const r = await running(t, {
    'a.yaml': WEB_SERVICE,
    'b.yaml': WEB_SERVICE.replace('- port: 80', '- port: 81'),
    'c.yaml': WEB_SERVICE.replace('name: web', 'name: other'),
  });
  const byFile = Object.fromEntries(r.cp.status().resources.map((s) => [path.basename(s.file), s]));
  t.is(byFile['a.yaml']!.state, 'Accepted');
  t.is(byFile['b.yaml']!.code, 'NM_ERR_CONFIG_CONFLICT');
  t.regex(byFile['b.yaml']!.message, /Service shop\/web: field metadata\.name: also defined at .*a\.yaml:1/);
  t.is(byFile['c.yaml']!.code, 'NM_ERR_CONFIG_CONFLICT');
  t.regex(byFile['c.yaml']!.message, /field spec\.clusterIP: clusterIP 10\.96\.0\.20 is already used by Service shop\/web/);
  t.deepEqual(
    r.cp.snapshot()!.services.map((s) => `${s.name}:${s.ports[0]!.port}`),
    ['web:80'],
  );
});

test('a Service moved onto a clusterIP already in use is rejected and keeps serving its last good address', async (t) => {
  const other = WEB_SERVICE.replace('name: web', 'name: api').replace('10.96.0.20', '10.96.0.21');
  const r = await running(t, { 'a.yaml': WEB_SERVICE, 'b.yaml': other });
  await r.write('b.yaml', other.replace('10.96.0.21', '10.96.0.20'));
  await r.cp.rescan();
  const api = r.cp.status().resources.find((s) => s.resource === 'Service shop/api')!;
  t.is(api.code, 'NM_ERR_CONFIG_CONFLICT');
  t.true(api.servingLastGood);
  t.deepEqual(
    r.cp.snapshot()!.services.map((s) => `${s.name}=${s.clusterIp}`),
    ['api=10.96.0.21', 'web=10.96.0.20'],
  );
});

test('resources removed from the files are removed from the snapshot, including those only served as last good', async (t) => {
  const r = await running(t, { 'svc.yaml': WEB_SERVICE, 'pods.yaml': pod('web-1', '10.1.0.2') });
  await r.write('svc.yaml', WEB_SERVICE.replace('- port: 80', '- port: -1'));
  await r.cp.rescan();
  t.deepEqual(r.cp.snapshot()!.services.map((s) => s.name), ['web'], 'last good while rejected');
  await rm(path.join(r.dir, 'svc.yaml'));
  await rm(path.join(r.dir, 'pods.yaml'));
  await r.cp.rescan();
  t.deepEqual(r.cp.snapshot()!.services, []);
  t.deepEqual(r.cp.snapshot()!.workloads, []);
  t.deepEqual(r.cp.status().resources, []);
});

test('every configuration error is counted once in nodemesh_config_errors_total by code and kind', async (t) => {
  const r = await running(t, {
    'bad.yaml': 'a: [',
    'kind.yaml': WEB_SERVICE.replace('kind: Service', 'kind: Nope'),
    'svc.yaml': WEB_SERVICE.replace('- port: 80', '- port: 0'),
  });
  await r.write('other.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n');
  await r.cp.rescan(); // an unrelated change: persisting errors are not counted again
  const metrics = (await r.admin('/metrics')).body;
  const count = (code: string, kind: string) => {
    const m = new RegExp(`^nodemesh_config_errors_total\\{code="${code}",kind="${kind}"\\} (\\d+)$`, 'm').exec(metrics);
    return m ? Number(m[1]) : 0;
  };
  t.is(count('NM_ERR_CONFIG_YAML', ''), 1);
  t.is(count('NM_ERR_CONFIG_KIND', 'Nope'), 1);
  t.is(count('NM_ERR_CONFIG_FIELD', 'Service'), 1);
  t.regex(metrics, new RegExp(`^nodemesh_snapshot_version ${r.cp.snapshot()!.version}$`, 'm'));
});

test('garbage of every shape never stops the control plane, and the last good state keeps being served', async (t) => {
  const r = await running(t, { 'good.yaml': `${WEB_SERVICE}---\n${pod('web-1', '10.1.0.2')}` });
  const good = r.cp.snapshot();
  const garbage = [
    '\u0000\u0001\u0002binary',
    '',
    '42',
    '- a\n- b\n',
    'apiVersion: v1\nkind: Pod\n',
    'apiVersion: [v1]\nkind: Pod\nmetadata: {name: x}\n',
    'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: 7\n',
    `a: &a [${'x,'.repeat(50)}x]\nb: &b [${'*a,'.repeat(50)}*a]\nc: [${'*b,'.repeat(50)}*b]\n`,
    '{{{{{{{{',
  ];
  for (const [i, text] of garbage.entries()) {
    await r.write(`garbage-${i}.yaml`, text);
    await r.cp.rescan();
  }
  t.is(r.cp.snapshot(), good);
  t.is((await r.admin('/healthz/ready')).status, 200);
  t.deepEqual(JSON.parse((await r.admin('/debug/snapshot')).body), good);
  const status = JSON.parse((await r.admin('/debug/config_status')).body) as ReturnType<ControlPlane['status']>;
  t.true(status.fileErrors.length >= 5, JSON.stringify(status.fileErrors, null, 1));
  t.true(status.fileErrors.every((e) => e.message.includes('garbage-')));
});

test('`nodemesh config status` prints every resource with its status and exits 1 while anything is rejected', async (t) => {
  const r = await running(t, { 'svc.yaml': WEB_SERVICE, 'typo.yaml': WEB_SERVICE.replace('kind: Service', 'kind: Servce') });
  const out = sink();
  t.is(await printConfigStatus(`http://127.0.0.1:${r.cp.adminPort}`, out.stream), 1);
  const lines = out.text().split('\n');
  t.regex(lines[0]!, /^KIND\s+NAMESPACE\/NAME\s+STATUS\s+MESSAGE$/);
  t.true(lines.some((l) => /^Service\s+shop\/web\s+Accepted\s*$/.test(l)), out.text());
  t.true(lines.some((l) => /^Servce\s+shop\/web\s+Rejected\s+NM_ERR_CONFIG_KIND: .*typo\.yaml:1: .*unknown kind Servce/.test(l)), out.text());

  await rm(path.join(r.dir, 'typo.yaml'));
  await r.cp.rescan();
  const ok = sink();
  t.is(await printConfigStatus(`127.0.0.1:${r.cp.adminPort}`, ok.stream), 0);
  t.regex(ok.text(), /1 accepted, 0 rejected, 0 file error\(s\)/);
});

test('`nodemesh config status` exits 2 and says why when the control plane cannot be reached', async (t) => {
  const out = sink();
  t.is(await printConfigStatus('http://127.0.0.1:1', out.stream), 2);
  t.regex(out.text(), /cannot read the configuration status from http:\/\/127\.0\.0\.1:1\/debug\/config_status/);
});

function sink(): { stream: Writable; text(): string } {
  let buf = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      buf += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => buf };
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('an accepted VirtualService whose host is no Service says so in its status (not a silent no-op)', async (t) => {
  const r = await running(t, {
    'web.yaml': WEB_SERVICE,
    'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ghost
  namespace: shop
spec:
  hosts: [ghost]
  http:
  - route:
    - destination: {host: web}
`,
  });
  await r.cp.rescan();
  const status = JSON.parse((await r.admin('/debug/config_status')).body) as { resources: { resource: string; state: string; message: string }[] };
  const vs = status.resources.find((s) => s.resource === 'VirtualService shop/ghost')!;
  t.is(vs.state, 'Accepted');
  t.regex(vs.message, /host ghost\.shop\.svc\.cluster\.local is not a known Service/);
});
