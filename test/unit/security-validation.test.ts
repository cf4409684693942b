// PeerAuthentication and AuthorizationPolicy configuration as a specification: every error
// Istio's validation reports is a Rejected status naming the file, the resource and the
// field; a rejected policy is counted and keeps its last good version; what the compiler
// makes of accepted policies (scope, targetRefs, the HTTP flag); and a snapshot with a full
// SecurityConfig round-trips the real gRPC discovery stream.
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ControlPlane } from '../../control/control-plane.js';
import { validateDocument } from '../../control/validate/validate.js';
import { configDir, controlPlane, firstSnapshot } from '../helpers/control-plane.js';
import { compileYaml, podYaml, store } from '../helpers/config-yaml.js';
import { holds } from '../helpers/property-holds.js';

function doc(kind: 'PeerAuthentication' | 'AuthorizationPolicy', name: string, spec: string, meta = ''): string {
  return `apiVersion: security.istio.io/v1
kind: ${kind}
metadata:
  name: ${name}
  namespace: shop${meta}
spec:
${spec.replace(/^/gm, '  ')}
`;
}

/** The one status of a single-document file: must be Rejected with a field error. */
function rejected(t: ExecutionContext, yaml: string): { field: string; message: string } {
  const r = store(yaml, '/etc/mesh/policy.yaml');
  const s = r.statuses[0]!;
  t.is(s.state, 'Rejected', s.message);
  t.is(s.code, 'NM_ERR_CONFIG_FIELD');
  const m = /^\/etc\/mesh\/policy\.yaml:\d+: (\S+ shop\/\S+): field (\S+): (.*)$/.exec(s.message);
  t.truthy(m, `names file, line, resource and field: ${s.message}`);
  t.is(m?.[1], s.resource);
  return { field: m?.[2] ?? '', message: m?.[3] ?? s.message };
}

const PA_ERRORS: [string, string, string, RegExp][] = [
  ['an unknown mode', 'mtls: {mode: BLAH}', 'spec.mtls.mode', /expected one of UNSET, DISABLE, PERMISSIVE, STRICT, found "BLAH"/],
  [
    'a port key that is not a number',
    'selector: {matchLabels: {foo: bar}}\nportLevelMtls:\n  acd: {mode: STRICT}',
    'spec.portLevelMtls.acd',
    /not a port/,
  ],
  ['port 0', 'selector: {matchLabels: {foo: bar}}\nportLevelMtls:\n  "0": {mode: STRICT}', 'spec.portLevelMtls["0"]', /1-65535/],
  [
    'a port above 65535',
    'selector: {matchLabels: {foo: bar}}\nportLevelMtls:\n  "42949672": {mode: STRICT}',
    'spec.portLevelMtls["42949672"]',
    /1-65535/,
  ],
  ['port-level mTLS without a selector', 'portLevelMtls:\n  "80": {mode: STRICT}', 'spec.portLevelMtls', /only with a selector/],
  ['an empty portLevelMtls', 'selector: {matchLabels: {foo: bar}}\nportLevelMtls: {}', 'spec.portLevelMtls', /at least one port/],
  ['an unknown field', 'mtl: {mode: STRICT}', 'spec.mtl', /unknown field; did you mean mtls\? expected one of selector, mtls, portLevelMtls/],
  ['a wildcard in the selector', 'selector: {matchLabels: {app: "web*"}}', 'spec.selector.matchLabels.app', /wildcard/],
];

for (const [what, spec, field, detail] of PA_ERRORS) {
  test(`PeerAuthentication with ${what} is rejected naming ${field}`, (t) => {
    const e = rejected(t, doc('PeerAuthentication', 'p', spec));
    t.is(e.field, field);
    t.regex(e.message, detail);
  });
}

const AP_ERRORS: [string, string, string, RegExp][] = [
  [
    'serviceAccounts with namespaces',
    'rules:\n- from:\n  - source: {serviceAccounts: ["bar/sa"], namespaces: [bar]}',
    'spec.rules[0].from[0].source.serviceAccounts',
    /cannot be set together with principals or namespaces/,
  ],
  [
    'serviceAccounts with principals',
    'rules:\n- from:\n  - source: {serviceAccounts: ["baz/sa"], principals: [bar]}',
    'spec.rules[0].from[0].source.serviceAccounts',
    /principals or namespaces/,
  ],
  [
    'a malformed service account',
    'rules:\n- from:\n  - source: {serviceAccounts: ["a/b/c"]}',
    'spec.rules[0].from[0].source.serviceAccounts[0]',
    /'serviceAccount' or 'namespace\/serviceAccount'/,
  ],
  ['an unknown action', 'action: REJECT', 'spec.action', /expected one of ALLOW, DENY, AUDIT, CUSTOM/],
  ['DENY without rules', 'action: DENY', 'spec.rules', /DENY policy without rules never triggers/],
  ['CUSTOM without a provider', 'action: CUSTOM\nrules: [{}]', 'spec.provider.name', /required with action CUSTOM/],
  ['a provider with ALLOW', 'provider: {name: ext}\nrules: [{}]', 'spec.provider', /only with action CUSTOM/],
  [
    'CUSTOM with principals',
    'action: CUSTOM\nprovider: {name: ext}\nrules:\n- from:\n  - source: {principals: [a]}',
    'spec.rules[0].from[0].source.principals',
    /not supported with action CUSTOM/,
  ],
  ['an empty from list', 'rules:\n- from: []', 'spec.rules[0].from', /must not be an empty list/],
  ['an empty source', 'rules:\n- from:\n  - source: {}', 'spec.rules[0].from[0].source', /must not be empty/],
  ['a from entry without source', 'rules:\n- from:\n  - {}', 'spec.rules[0].from[0].source', /is required/],
  ['an empty operation', 'rules:\n- to:\n  - operation: {}', 'spec.rules[0].to[0].operation', /must not be empty/],
  ['a null rule', 'rules:\n- null', 'spec.rules[0]', /must not be empty/],
  [
    'a CIDR with a bad prefix length',
    'rules:\n- from:\n  - source: {ipBlocks: ["10.0.0.0/33"]}',
    'spec.rules[0].from[0].source.ipBlocks[0]',
    /prefix length must be 0-32/,
  ],
  [
    'a bad IP address',
    'rules:\n- from:\n  - source: {notIpBlocks: ["10.0.0.256"]}',
    'spec.rules[0].from[0].source.notIpBlocks[0]',
    /bad IP address/,
  ],
  ['a named port', 'rules:\n- to:\n  - operation: {ports: ["http"]}', 'spec.rules[0].to[0].operation.ports[0]', /bad port "http"/],
  ['a port above 65535', 'rules:\n- to:\n  - operation: {notPorts: ["70000"]}', 'spec.rules[0].to[0].operation.notPorts[0]', /bad port/],
  [
    'an empty value',
    'rules:\n- to:\n  - operation: {methods: [""]}',
    'spec.rules[0].to[0].operation.methods[0]',
    /empty value not allowed/,
  ],
  [
    'an unsupported path template',
    'rules:\n- to:\n  - operation: {paths: ["/{name}/x/{*}"]}',
    'spec.rules[0].to[0].operation.paths[0]',
    /beyond a supported operator/,
  ],
  [
    '{**} before another operator',
    'rules:\n- to:\n  - operation: {paths: ["/{**}/{*}"]}',
    'spec.rules[0].to[0].operation.paths[0]',
    /\{\*\*\} must be the last operator/,
  ],
  [
    'an unknown when key',
    'rules:\n- when:\n  - {key: source.name, values: [x]}',
    'spec.rules[0].when[0].key',
    /unknown attribute "source.name"; supported: request.headers\[NAME\]/,
  ],
  [
    'destination.namespace in when',
    'rules:\n- when:\n  - {key: destination.namespace, values: [x]}',
    'spec.rules[0].when[0].key',
    /replaced by the policy's metadata.namespace/,
  ],
  [
    'destination.labels in when',
    'rules:\n- when:\n  - {key: "destination.labels[app]", values: [x]}',
    'spec.rules[0].when[0].key',
    /replaced by the workload selector/,
  ],
  [
    'request.headers without a name',
    'rules:\n- when:\n  - {key: request.headers, values: [x]}',
    'spec.rules[0].when[0].key',
    /should have the format a\[b\]/,
  ],
  [
    'a when condition without values',
    'rules:\n- when:\n  - {key: source.ip}',
    'spec.rules[0].when[0]',
    /at least one of values or notValues/,
  ],
  [
    'a bad source.ip value',
    'rules:\n- when:\n  - {key: source.ip, notValues: ["not-an-ip"]}',
    'spec.rules[0].when[0].notValues[0]',
    /bad IP address/,
  ],
  [
    'a bad destination.port value',
    'rules:\n- when:\n  - {key: destination.port, values: ["8o"]}',
    'spec.rules[0].when[0].values[0]',
    /bad port/,
  ],
  [
    'selector and targetRefs',
    'selector: {matchLabels: {app: a}}\ntargetRefs: [{kind: Service, group: "", name: web}]\nrules: [{}]',
    'spec.selector',
    /only one of selector and targetRef/,
  ],
  [
    'a targetRef to a Deployment',
    'targetRefs: [{kind: Deployment, group: apps, name: web}]\nrules: [{}]',
    'spec.targetRefs[0].kind',
    /targetRef must be to one of core\/Service/,
  ],
  [
    'a cross-namespace targetRef',
    'targetRefs: [{kind: Service, group: "", name: web, namespace: other}]\nrules: [{}]',
    'spec.targetRefs[0].namespace',
    /cross-namespace/,
  ],
  [
    'a typo in a rule',
    'rules:\n- form:\n  - source: {namespaces: [a]}',
    'spec.rules[0].form',
    /unknown field; did you mean from\? expected one of from, to, when/,
  ],
  ['a typo in the spec (rule for rules)', 'rule:\n- {}', 'spec.rule', /unknown field/],
];

for (const [what, spec, field, detail] of AP_ERRORS) {
  test(`AuthorizationPolicy with ${what} is rejected naming ${field}`, (t) => {
    const e = rejected(t, doc('AuthorizationPolicy', 'p', spec));
    t.is(e.field, field);
    t.regex(e.message, detail);
  });
}

test('the istio.io/dry-run annotation: only on ALLOW/DENY AuthorizationPolicies, and only true or false', (t) => {
  const ann = (v: string) => `\n  annotations: {"istio.io/dry-run": "${v}"}`;
  t.regex(
    rejected(t, doc('AuthorizationPolicy', 'a', 'action: AUDIT\nrules: [{}]', ann('true'))).message,
    /only with action ALLOW or DENY, found AUDIT/,
  );
  t.regex(rejected(t, doc('AuthorizationPolicy', 'b', 'rules: [{}]', ann('yes'))).message, /expected "true" or "false"/);
  t.is(rejected(t, doc('PeerAuthentication', 'c', 'mtls: {mode: STRICT}', ann('true'))).field, 'metadata.annotations["istio.io/dry-run"]');
});

test('what nodemesh cannot enforce is accepted and said in the status: CUSTOM, JWT attributes, gateway targets, spiffe:// principals', (t) => {
  const r = store(
    [
      doc('AuthorizationPolicy', 'ext', 'action: CUSTOM\nprovider: {name: my-authz}\nrules:\n- to:\n  - operation: {paths: ["/admin"]}'),
      doc('AuthorizationPolicy', 'jwt', 'rules:\n- from:\n  - source: {requestPrincipals: ["*"]}'),
      doc('AuthorizationPolicy', 'gw', 'targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: ingress}]\nrules: [{}]'),
      doc('AuthorizationPolicy', 'uri', 'rules:\n- from:\n  - source: {principals: ["spiffe://cluster.local/ns/a/sa/b"]}'),
    ].join('---\n'),
  );
  t.deepEqual(
    r.statuses.map((s) => s.state),
    ['Accepted', 'Accepted', 'Accepted', 'Accepted'],
  );
  t.regex(r.statuses[0]!.message, /CUSTOM .*"my-authz".* not supported by nodemesh: this policy is skipped/);
  t.regex(r.statuses[1]!.message, /does not validate JWTs/);
  t.regex(r.statuses[2]!.message, /targetRef Gateway ingress: .* applies to no workload/);
  t.regex(r.statuses[3]!.message, /without "spiffe:\/\/".*never matches/);
});

test('property: any spec, however malformed, is accepted or rejected with a field error — validation never throws', (t) => {
  const leaf = fc.oneof(
    fc.string({ maxLength: 6 }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.constantFrom('*', 'GET', '10.0.0.0/8', '80', 'STRICT', 'DENY', 'request.headers[x]', 'source.ip'),
  );
  const keys = fc.constantFrom(
    'selector',
    'matchLabels',
    'mtls',
    'mode',
    'portLevelMtls',
    '80',
    'action',
    'rules',
    'from',
    'to',
    'when',
    'source',
    'operation',
    'principals',
    'notIpBlocks',
    'serviceAccounts',
    'ports',
    'paths',
    'key',
    'values',
    'notValues',
    'targetRefs',
    'kind',
    'name',
    'provider',
  );
  const value = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('node'), { maxLength: 3 }), fc.dictionary(keys, tie('node'), { maxKeys: 4 })),
  })).node;
  holds(
    t,
    fc.property(fc.constantFrom('PeerAuthentication', 'AuthorizationPolicy'), value, (kind, spec) => {
      const r = validateDocument({
        file: 'fuzz.yaml',
        index: 0,
        line: 1,
        apiVersion: 'security.istio.io/v1',
        kind,
        name: 'p',
        namespace: 'shop',
        object: { apiVersion: 'security.istio.io/v1', kind, metadata: { name: 'p', namespace: 'shop' }, spec },
        lineOf: () => undefined,
      });
      return r.ok || (r.error.code === 'NM_ERR_CONFIG_FIELD' && r.error.message.startsWith(`fuzz.yaml:1: ${kind} shop/p: field spec`));
    }),
    { numRuns: 1000 },
  );
});

// --- the compiler --------------------------------------------------------------------------------

test('compile: per workload, the mode, the PeerAuthentications that decided, the policies that apply and whether HTTP is parsed', (t) => {
  const s = compileYaml(
    [
      podYaml('web', { ns: 'shop', labels: { app: 'web' } }),
      podYaml('db', { ns: 'shop', labels: { app: 'db' } }),
      podYaml('other', { ns: 'ops' }),
      doc('PeerAuthentication', 'default', 'mtls: {mode: STRICT}'),
      doc('PeerAuthentication', 'db', 'selector: {matchLabels: {app: db}}\nportLevelMtls:\n  5432: {mode: PERMISSIVE}'),
      doc('AuthorizationPolicy', 'web-get', 'selector: {matchLabels: {app: web}}\nrules:\n- to:\n  - operation: {methods: [GET]}'),
      doc('AuthorizationPolicy', 'audit-all', 'action: AUDIT\nrules:\n- to:\n  - operation: {paths: ["/x"]}'),
      doc('AuthorizationPolicy', 'db-l4', 'selector: {matchLabels: {app: db}}\nrules:\n- from:\n  - source: {namespaces: [shop]}'),
    ].join('---\n'),
  );
  t.deepEqual(s.security.workloads, [
    { workload: 'ops/other', mtlsMode: 'PERMISSIVE', portMtls: [], peerAuthentications: [], authorizationPolicies: [], http: false },
    {
      workload: 'shop/db',
      mtlsMode: 'STRICT',
      portMtls: [{ port: 5432, mode: 'PERMISSIVE' }],
      peerAuthentications: ['shop/default', 'shop/db'],
      authorizationPolicies: ['shop/audit-all', 'shop/db-l4'],
      http: false,
    },
    {
      workload: 'shop/web',
      mtlsMode: 'STRICT',
      portMtls: [],
      peerAuthentications: ['shop/default'],
      authorizationPolicies: ['shop/audit-all', 'shop/web-get'],
      http: true,
    },
  ]);
  t.deepEqual(
    s.security.authorizationPolicies.find((p) => p.name === 'web-get'),
    {
      namespace: 'shop',
      name: 'web-get',
      action: 'ALLOW',
      dryRun: false,
      provider: '',
      rules: [
        {
          from: [],
          to: [{ matches: [{ attribute: 'request.method', path: [], values: [{ kind: 'exact', value: 'GET' }], notValues: [] }] }],
          when: [],
        },
      ],
    },
  );
});

test('compile: a targetRef to a Service applies the policy to the pods behind it; one to a Gateway to no workload', (t) => {
  const s = compileYaml(
    [
      podYaml('web-1', { ns: 'shop', labels: { app: 'web' } }),
      podYaml('api-1', { ns: 'shop', labels: { app: 'api' } }),
      `apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80}]
`,
      doc('AuthorizationPolicy', 'svc', 'targetRefs: [{kind: Service, group: "", name: web}]\nrules: [{}]'),
      doc('AuthorizationPolicy', 'gw', 'targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: ingress}\nrules: [{}]'),
    ].join('---\n'),
  );
  const applied = Object.fromEntries(s.security.workloads.map((w) => [w.workload, w.authorizationPolicies]));
  t.deepEqual(applied, { 'shop/api-1': [], 'shop/web-1': ['shop/svc'] });
});

test('compile: values are normalised — CIDRs to their network, ports to numbers, bare service accounts into the policy namespace, header names lowercase', (t) => {
  const s = compileYaml(
    doc(
      'AuthorizationPolicy',
      'n',
      'rules:\n- from:\n  - source: {ipBlocks: ["10.1.2.3/16", "10.9.9.9"], serviceAccounts: [front]}\n  to:\n  - operation: {ports: ["0080"]}\n  when:\n  - {key: "request.headers[X-Token]", values: ["a*"]}',
    ),
  );
  const [rule] = s.security.authorizationPolicies[0]!.rules;
  t.deepEqual(rule!.from[0]!.matches, [
    { attribute: 'source.serviceAccount', path: [], values: [{ kind: 'exact', value: 'shop/front' }], notValues: [] },
    {
      attribute: 'source.ip',
      path: [],
      values: [
        { kind: 'cidr', value: '10.1.0.0/16' },
        { kind: 'cidr', value: '10.9.9.9/32' },
      ],
      notValues: [],
    },
  ]);
  t.deepEqual(rule!.to[0]!.matches[0]!.values, [{ kind: 'exact', value: '80' }]);
  t.deepEqual(rule!.when[0], { attribute: 'request.headers', path: ['x-token'], values: [{ kind: 'prefix', value: 'a' }], notValues: [] });
});

// --- through a running control plane -----------------------------------------------------------

async function running(t: ExecutionContext, files: Record<string, string>): Promise<{ cp: ControlPlane; dir: string }> {
  const dir = await configDir(t, files);
  return { cp: await controlPlane(t, { configDir: dir, rescanMs: 0, debounceMs: 10_000 }), dir };
}

test('a rejected policy is counted, keeps its last good version in force and never half-applies', async (t) => {
  const good = doc('AuthorizationPolicy', 'web', 'rules:\n- from:\n  - source: {namespaces: [shop]}');
  const { cp, dir } = await running(t, { 'pods.yaml': podYaml('web', { ns: 'shop' }), 'policy.yaml': good });
  const before = cp.snapshot()!.security;
  t.deepEqual(before.workloads[0]!.authorizationPolicies, ['shop/web']);

  // one good change and one bad one in the same document: nothing of it applies
  await writeFile(
    path.join(dir, 'policy.yaml'),
    doc('AuthorizationPolicy', 'web', 'rules:\n- from:\n  - source: {namespaces: [ops]}\n- from:\n  - source: {ipBlocks: ["300.0.0.1"]}'),
  );
  await cp.rescan();
  const status = cp.status().resources.find((s) => s.resource === 'AuthorizationPolicy shop/web')!;
  t.is(status.state, 'Rejected');
  t.true(status.servingLastGood);
  t.regex(
    status.message,
    /policy\.yaml:\d+: AuthorizationPolicy shop\/web: field spec\.rules\[1\]\.from\[0\]\.source\.ipBlocks\[0\]: bad IP address "300\.0\.0\.1".*last good version stays in force/,
  );
  t.deepEqual(cp.snapshot()!.security, before);
  const metrics = await (await fetch(`http://127.0.0.1:${cp.adminPort}/metrics`)).text();
  t.regex(metrics, /^nodemesh_config_errors_total\{code="NM_ERR_CONFIG_FIELD",kind="AuthorizationPolicy"\} 1$/m);
});

test('a snapshot with a full SecurityConfig round-trips the real gRPC discovery stream unchanged', async (t) => {
  const { cp } = await running(t, {
    'pods.yaml': [podYaml('web', { ns: 'shop', labels: { app: 'web' } }), podYaml('db', { ns: 'shop', labels: { app: 'db' } })].join(
      '---\n',
    ),
    'peer.yaml': [
      doc('PeerAuthentication', 'default', 'mtls: {mode: STRICT}'),
      doc(
        'PeerAuthentication',
        'db',
        'selector: {matchLabels: {app: db}}\nportLevelMtls:\n  5432: {mode: DISABLE}\n  9000: {mode: PERMISSIVE}',
      ),
    ].join('---\n'),
    'authz.yaml': [
      doc(
        'AuthorizationPolicy',
        'everything',
        `selector: {matchLabels: {app: web}}
rules:
- from:
  - source: {principals: ["cluster.local/ns/shop/sa/*", "*"], notNamespaces: [dev], ipBlocks: ["10.0.0.0/8"], remoteIpBlocks: ["1.2.3.4"]}
  - source: {serviceAccounts: [front, "ops/admin"]}
  to:
  - operation: {hosts: ["*.example.com"], ports: ["80"], methods: [GET], notPaths: ["/admin*", "/api/{*}/x/{**}"]}
  when:
  - {key: "request.headers[x-token]", values: [admin], notValues: ["*-test"]}
  - {key: "request.auth.claims[groups][0]", values: [dev]}
  - {key: destination.port, values: ["80"]}`,
      ),
      doc(
        'AuthorizationPolicy',
        'deny-dev',
        'action: DENY\nrules:\n- from:\n  - source: {namespaces: [dev]}',
        '\n  annotations: {"istio.io/dry-run": "true"}',
      ),
      doc('AuthorizationPolicy', 'audit', 'action: AUDIT\nrules: [{}]'),
      doc('AuthorizationPolicy', 'ext', 'action: CUSTOM\nprovider: {name: opa}\nrules: [{}]'),
    ].join('---\n'),
  });
  t.deepEqual(
    cp
      .status()
      .resources.filter((s) => s.state !== 'Accepted')
      .map((s) => s.message),
    [],
  );
  const received = await firstSnapshot(`127.0.0.1:${cp.grpcPort}`);
  const sent = cp.snapshot()!;
  t.is(sent.security.authorizationPolicies.length, 4);
  t.true(sent.security.workloads.some((w) => w.portMtls.length === 2 && w.http === false));
  t.deepEqual(received.security, sent.security);
  t.deepEqual(received, sent);
});
