// Properties over the configuration path a user's YAML takes (file text → parseYamlFile →
// validateDocument → the store → the compiler), fed with valid documents of every kind the
// control plane reads, mutated as a hand, an editor or a broken generator would: characters
// dropped, inserted or replaced, lines duplicated, dropped or re-indented, values swapped
// for ones of another type, anchors and tags, a file cut short. Whatever comes in, the
// answer is the resource accepted or a NodemeshError (ConfigError) that says where — the
// file, a document's line, a resource's name and, for a field error, the field — never
// an exception of another kind, and the valid documents beside it still compile.
// (security-validation.test.ts has the same property over AuthorizationPolicy and
// PeerAuthentication specs as objects; this one starts from text and covers every kind.)
import test from 'ava';
import fc from 'fast-check';
import { ConfigError } from '../../common/errors.js';
import { compileSnapshot } from '../../control/compile/compiler.js';
import { ResourceStore } from '../../control/config-store.js';
import { parseYamlFile } from '../../control/source/files.js';
import { validateDocument } from '../../control/validate/validate.js';
import { podYaml } from '../helpers/config-yaml.js';
import { fuzzRuns, fuzzSeed } from '../helpers/fuzz.js';
import { holds } from '../helpers/property-holds.js';

const SAMPLES: Record<string, string> = {
  Service: `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  clusterIP: 10.96.0.10
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
    appProtocol: http
`,
  Pod: podYaml('web-1', { ns: 'shop', labels: { app: 'web', version: 'v1' }, sa: 'web', ip: '10.244.0.2' }),
  Namespace: `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    istio.io/dataplane-mode: ambient
  annotations:
    nodemesh.io/fail-mode: open
`,
  VirtualService: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
  namespace: shop
spec:
  hosts: [web]
  http:
  - match:
    - uri: {prefix: /api}
      headers:
        x-user: {exact: alice}
    route:
    - destination: {host: web, subset: v1, port: {number: 80}}
      weight: 90
    - destination: {host: web, subset: v2}
      weight: 10
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset"}
    timeout: 10s
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 5}}
`,
  DestinationRule: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: web
  namespace: shop
spec:
  host: web
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 3s}
      http: {http1MaxPendingRequests: 10, idleTimeout: 60s}
    outlierDetection: {consecutive5xxErrors: 3, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
`,
  HTTPRoute: `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: shop
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: web
    port: 80
  rules:
  - matches:
    - path: {type: PathPrefix, value: /v2}
      method: GET
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add: [{name: x-canary, value: "1"}]
    backendRefs:
    - {name: web-v2, port: 80, weight: 1}
    timeouts: {request: 5s}
`,
  PeerAuthentication: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: PERMISSIVE}
`,
  AuthorizationPolicy: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/shop/sa/client"], notIpBlocks: ["10.0.0.0/8"]}
    to:
    - operation: {methods: [GET], paths: ["/api/*"], ports: ["8080"]}
    when:
    - key: request.headers[x-user]
      values: [alice]
`,
};

/** What a mutation may put in: values of every YAML type, structure, anchors, tags, control characters. */
const PIECES = [
  '',
  ' ',
  '  ',
  '-',
  '- ',
  ':',
  ': ',
  '{',
  '}',
  '[',
  ']',
  '[]',
  '{}',
  '~',
  'null',
  'true',
  '"',
  "'",
  '#',
  '&a',
  '*a',
  '*b',
  '!!binary',
  '!!str',
  '!!map',
  '<<: *a',
  '0',
  '-1',
  '1e309',
  '0x1F',
  '99999999999999999999',
  '.inf',
  '.nan',
  '"\\u0000"',
  '\t',
  '\r',
  '\n',
  '---\n',
  '...\n',
  '%YAML 1.2\n',
  'kind: Service',
  'apiVersion: v1',
  'metadata: {}',
  'name: ',
  'namespace: ""',
  'spec: 7',
  '\u0000',
  '\u00ff',
  'ü',
  '💥',
];

type Mutation = { kind: 'insert' | 'delete' | 'replace' | 'dupLine' | 'dropLine' | 'indent' | 'value' | 'cut'; at: number; n: number; piece: string };

const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('insert', 'delete', 'replace', 'dupLine', 'dropLine', 'indent', 'value', 'cut'),
  at: fc.nat(),
  n: fc.integer({ min: 1, max: 12 }),
  piece: fc.oneof(fc.constantFrom(...PIECES), fc.string({ maxLength: 8 })),
});

function mutate(text: string, m: Mutation): string {
  if (text.length === 0) return m.piece;
  const at = m.at % text.length;
  const lines = text.split('\n');
  const line = m.at % lines.length;
  switch (m.kind) {
    case 'insert':
      return text.slice(0, at) + m.piece + text.slice(at);
    case 'delete':
      return text.slice(0, at) + text.slice(at + m.n);
    case 'replace':
      return text.slice(0, at) + m.piece + text.slice(at + m.n);
    case 'dupLine':
      return [...lines.slice(0, line + 1), ...lines.slice(line)].join('\n');
    case 'dropLine':
      return [...lines.slice(0, line), ...lines.slice(line + 1)].join('\n');
    case 'indent':
      lines[line] = m.n % 2 ? ' '.repeat(m.n) + lines[line] : lines[line]!.trimStart();
      return lines.join('\n');
    case 'value': {
      // the value after a line's first ": " becomes the piece (another type, often)
      const l = lines[line]!;
      const colon = l.indexOf(': ');
      lines[line] = colon < 0 ? `${l}: ${m.piece}` : `${l.slice(0, colon + 2)}${m.piece}`;
      return lines.join('\n');
    }
    case 'cut':
      return text.slice(0, at);
  }
}

/** A file: one to three sample documents, mutated one to four times. */
const mutatedFile = fc
  .record({
    kinds: fc.array(fc.constantFrom(...Object.keys(SAMPLES)), { minLength: 1, maxLength: 3 }),
    mutations: fc.array(mutation, { minLength: 1, maxLength: 4 }),
  })
  .map(({ kinds, mutations }) => mutations.reduce(mutate, kinds.map((k) => SAMPLES[k]!).join('---\n')));

const FILE = 'fuzz/shop.yaml';

/**
 * The error says where: always this file; a document that is no Kubernetes object at all
 * (a string, a list, no kind) its line; a resource's error the resource, and a field error
 * the field.
 */
function saysWhere(e: unknown, of: 'file' | 'document' | 'resource'): string | undefined {
  if (!(e instanceof ConfigError)) return `not a ConfigError: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
  if (!/^NM_ERR_CONFIG_/.test(e.code)) return `code ${e.code}`;
  if (e.location.file !== FILE || !e.message.startsWith(FILE)) return `no file in ${e.message}`;
  if (of === 'document' && !e.location.line) return `no line in ${e.message}`;
  if (of === 'resource' && !e.location.resource) return `no resource in ${e.message}`;
  if (of === 'resource' && e.code === 'NM_ERR_CONFIG_FIELD' && !e.location.field) return `no field in ${e.message}`;
  return undefined;
}

test('the samples are valid as written (the mutations start from accepted documents)', (t) => {
  for (const [kind, text] of Object.entries(SAMPLES)) {
    const parsed = parseYamlFile(FILE, text);
    if ('error' in parsed) return t.fail(`${kind}: ${parsed.error.message}`);
    t.deepEqual(parsed.documentErrors, [], kind);
    for (const d of parsed.documents) {
      const r = validateDocument(d);
      t.true(r.ok, `${kind}: ${r.ok ? '' : r.error.message}`);
    }
  }
});

test('property: mutated YAML of every kind is accepted or refused with a ConfigError naming the file, the resource and the field — never another throw', (t) => {
  holds(
    t,
    fc.property(mutatedFile, (text) => {
      let parsed: ReturnType<typeof parseYamlFile>;
      try {
        parsed = parseYamlFile(FILE, text);
      } catch (e) {
        throw new Error(`parseYamlFile threw: ${e instanceof Error ? e.stack : String(e)}`);
      }
      if ('error' in parsed) {
        const why = saysWhere(parsed.error, 'file');
        if (why) throw new Error(`file error: ${why}`);
        return true;
      }
      for (const e of parsed.documentErrors) {
        const why = saysWhere(e, 'document');
        if (why) throw new Error(`document error: ${why}`);
      }
      for (const d of parsed.documents) {
        let r: ReturnType<typeof validateDocument>;
        try {
          r = validateDocument(d);
        } catch (e) {
          throw new Error(`validateDocument threw on ${d.kind} ${d.namespace}/${d.name}: ${e instanceof Error ? e.stack : String(e)}`);
        }
        if (!r.ok) {
          const why = saysWhere(r.error, 'resource');
          if (why) throw new Error(`validation error: ${why}`);
        }
      }
      return true;
    }),
    { numRuns: fuzzRuns(800), seed: fuzzSeed() },
  );
});

test('property: a mutated file beside valid ones never stops the store or the compiler, never half-applies a resource, and the valid files stay in force', (t) => {
  const good = Object.values(SAMPLES).join('---\n');
  const parsedGood = parseYamlFile('good.yaml', good);
  if ('error' in parsedGood) return t.fail(parsedGood.error.message);
  const alone = new ResourceStore().apply({ files: [{ file: 'good.yaml', documents: parsedGood.documents, documentErrors: [] }] });
  holds(
    t,
    fc.property(mutatedFile, (text) => {
      const parsed = parseYamlFile(FILE, text);
      const files = [{ file: 'good.yaml', documents: parsedGood.documents, documentErrors: [] as ConfigError[] }];
      if (!('error' in parsed)) files.push({ file: FILE, documents: parsed.documents, documentErrors: parsed.documentErrors });
      const r = new ResourceStore().apply({ files });
      for (const s of r.statuses.filter((x) => x.state === 'Rejected')) {
        if (!s.code?.startsWith('NM_ERR_CONFIG_') || !s.message.startsWith(s.file) || !s.message.includes(s.resource)) throw new Error(`a rejection that does not say where: ${JSON.stringify(s)}`);
      }
      // every resource of good.yaml is still in force (a mutated duplicate is a conflict the
      // earlier file wins, in path order), and a rejected document is not in force at all
      const inForce = new Set(r.resources.map((x) => JSON.stringify(x)));
      for (const x of alone.resources) if (!inForce.has(JSON.stringify(x))) throw new Error(`lost ${JSON.stringify(x).slice(0, 200)}`);
      try {
        compileSnapshot(r.resources);
      } catch (e) {
        throw new Error(`the compiler threw: ${e instanceof Error ? e.stack : String(e)}`);
      }
      return true;
    }),
    { numRuns: fuzzRuns(200), seed: fuzzSeed() },
  );
});
