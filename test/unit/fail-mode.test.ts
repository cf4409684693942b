// The fail mode per namespace, from YAML to the kernel's flags: the control plane resolves
// `nodemesh.io/fail-mode` (Namespace annotation, else label) into Workload.failOpen, never for
// a pod STRICT on any port; the snapshot check enforces its type; the agent's codecs write
// it as the flags bpf/nodemesh.h defines (checked against the addon's own view of the header).
import test from 'ava';
import { compileYaml, peerAuthentication, podYaml, store } from '../helpers/config-yaml.js';
import { checkSnapshot, InvalidSnapshotError } from '../../control/api/snapshot-check.js';
import { fullSnapshot } from '../helpers/snapshot-fixture.js';
import { native } from '../../agent/datapath/addon.js';
import { checkInboundLayout, checkLayout, decodeLiveness, encodeLiveness, INBOUND_FLAGS, LIVENESS, NETNS_FLAGS } from '../../agent/datapath/codecs.js';
import { olderPinVersions } from '../../agent/datapath/redirect.js';

function namespace(name: string, meta: { labels?: Record<string, string>; annotations?: Record<string, string> }): string {
  return `apiVersion: v1
kind: Namespace
metadata:
  name: ${name}
  labels: ${JSON.stringify({ 'nodemesh.io/mesh': 'enabled', ...meta.labels })}
  annotations: ${JSON.stringify(meta.annotations ?? {})}
`;
}

const failOpen = (yaml: string[]) => Object.fromEntries(compileYaml(yaml).workloads.map((w) => [w.uid, w.failOpen]));

test('a meshed pod fails open when its Namespace says nodemesh.io/fail-mode: open, by annotation or label, the annotation winning', (t) => {
  t.deepEqual(
    failOpen([
      namespace('by-annotation', { annotations: { 'nodemesh.io/fail-mode': 'open' } }),
      namespace('by-label', { labels: { 'nodemesh.io/fail-mode': 'open' } }),
      namespace('annotation-wins', { labels: { 'nodemesh.io/fail-mode': 'open' }, annotations: { 'nodemesh.io/fail-mode': 'closed' } }),
      namespace('closed', { annotations: { 'nodemesh.io/fail-mode': 'closed' } }),
      namespace('unset', {}),
      podYaml('p', { ns: 'by-annotation' }),
      podYaml('p', { ns: 'by-label' }),
      podYaml('p', { ns: 'annotation-wins' }),
      podYaml('p', { ns: 'closed' }),
      podYaml('p', { ns: 'unset' }),
    ]),
    { 'annotation-wins/p': false, 'by-annotation/p': true, 'by-label/p': true, 'closed/p': false, 'unset/p': false },
  );
});

test('STRICT always fails closed: a pod STRICT by a workload, namespace or port-level PeerAuthentication never fails open', (t) => {
  const open = { annotations: { 'nodemesh.io/fail-mode': 'open' } };
  t.deepEqual(
    failOpen([
      namespace('a', open),
      namespace('b', open),
      podYaml('strict', { ns: 'a', labels: { app: 'strict' } }),
      podYaml('port-strict', { ns: 'a', labels: { app: 'port-strict' } }),
      podYaml('permissive', { ns: 'a', labels: { app: 'permissive' } }),
      podYaml('any', { ns: 'b' }),
      peerAuthentication('a', 'strict', { selector: { matchLabels: { app: 'strict' } }, mtls: { mode: 'STRICT' } }),
      peerAuthentication('a', 'port', { selector: { matchLabels: { app: 'port-strict' } }, mtls: { mode: 'PERMISSIVE' }, portLevelMtls: { 8080: { mode: 'STRICT' } } }),
      peerAuthentication('b', 'default', { mtls: { mode: 'STRICT' } }),
    ]),
    { 'a/permissive': true, 'a/port-strict': false, 'a/strict': false, 'b/any': false },
  );
});

test('a pod that is not meshed never fails open (there is nothing of the mesh to bypass)', (t) => {
  const yaml = [
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: plain\n  annotations: {"nodemesh.io/fail-mode": "open"}\n`,
    podYaml('p', { ns: 'plain' }),
  ];
  t.deepEqual(failOpen(yaml), { 'plain/p': false });
});

test('a fail-mode value that is neither open nor closed is accepted and says the namespace fails closed', (t) => {
  const r = store(namespace('typo', { annotations: { 'nodemesh.io/fail-mode': 'opne' } }));
  const ns = r.statuses.find((s) => s.resource === 'Namespace typo');
  t.is(ns?.state, 'Accepted');
  t.true(ns?.message.includes('annotation nodemesh.io/fail-mode="opne" is neither "open" nor "closed": the namespace fails closed'), JSON.stringify(ns));
  t.deepEqual(failOpen([namespace('typo', { annotations: { 'nodemesh.io/fail-mode': 'opne' } }), podYaml('p', { ns: 'typo' })]), { 'typo/p': false });
});

test('the snapshot check keeps failOpen and refuses one that is not a bool, naming the field', (t) => {
  const s = fullSnapshot();
  s.workloads[0]!.failOpen = true;
  t.true(checkSnapshot(JSON.parse(JSON.stringify(s))).workloads[0]!.failOpen);
  const bad = JSON.parse(JSON.stringify(s)) as { workloads: Array<Record<string, unknown>> };
  bad.workloads[0]!.failOpen = 'yes';
  const err = t.throws(() => checkSnapshot(bad), { instanceOf: InvalidSnapshotError });
  t.is(err?.field, 'workloads[0].failOpen');
});

test('the codecs agree with bpf/nodemesh.h as the addon compiled it: structs, the liveness map and the flags', (t) => {
  const l = native().layout;
  t.notThrows(() => checkLayout(l));
  t.notThrows(() => checkInboundLayout(l));
  t.deepEqual([l.netnsFlagEnrolled, l.netnsFlagFailOpen, l.inboundFlagCapture, l.inboundFlagFailOpen], [NETNS_FLAGS.enrolled, NETNS_FLAGS.failOpen, INBOUND_FLAGS.capture, INBOUND_FLAGS.failOpen]);
  t.is(l.maps.liveness, 'nm_liveness');
  t.throws(() => checkLayout({ ...l, netnsFlagFailOpen: 4 }), { message: /NM_NETNS_F_FAIL_OPEN is 4 in bpf\/nodemesh.h but 2/ });
  const b = encodeLiveness(123456789012345n, 2_000_000_000n);
  t.is(b.length, LIVENESS.size);
  t.deepEqual(decodeLiveness(b), { heartbeatNs: 123456789012345n, timeoutNs: 2_000_000_000n });
});

test('an agent of pin version vN retires the pins of older versions beside its own, and nothing else', (t) => {
  const list = () => ['v1', 'v2', 'v3', 'v10', 'other', 'v2-backup'];
  t.deepEqual(olderPinVersions('/sys/fs/bpf/nodemesh/v3', list), ['/sys/fs/bpf/nodemesh/v1', '/sys/fs/bpf/nodemesh/v2']);
  t.deepEqual(olderPinVersions('/sys/fs/bpf/nodemesh/v1', list), []);
  t.deepEqual(olderPinVersions('/sys/fs/bpf/nodemesh-lab-x-node-a', list), [], 'a pin dir without a version segment (the lab) has no older versions');
});
