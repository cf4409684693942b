// `lab up --kubernetes`: the sample app with the control plane on `--source kubernetes`,
// watching the API server stand-in the lab runs as one of its processes (loaded with the
// lab's pods, Services, namespaces and the EndpointSlices the Services imply), through a
// kubeconfig the lab wrote — the code that watches a real cluster. The sample traffic flows
// meshed; a PUT of a running pod's `nodemesh.io/mesh` annotation to the API server (as
// kubectl annotate does) unmeshes and meshes it live; `lab down` ends the API server, also
// when the lab's state file is lost. Needs root.
import test from 'ava';
import { access, rm } from 'node:fs/promises';
import { scrape, sumMetric } from '../../cli/prom-text.js';
import { packagePath } from '../../common/paths.js';
import { KubeClient, loadKubeConfig } from '../../control/kube/kube-client.js';
import { labDown } from '../../deploy/lab/lab.js';
import { isAlive } from '../../deploy/lab/lab-processes.js';
import { labStateFile } from '../../deploy/lab/lab-state.js';
import { eventually } from '../helpers/eventually.js';
import { labPerFile } from '../helpers/lab-per-file.js';
import { enrolledPods, optInBoundMs, waitEnrolment } from '../helpers/live-opt-in.js';
import { canRunPrivileged } from '../helpers/privileged.js';

const SAMPLES = packagePath('deploy', 'lab', 'samples');
const LAB = 'lk-kube';
const FRONTEND = 'frontend.demo.svc.cluster.local';
const BACKEND = 'backend.demo.svc.cluster.local';

type Pod = { metadata: { name: string; annotations?: Record<string, string>; resourceVersion?: string }; status?: { podIP?: string } };
type Slice = { metadata: { labels?: Record<string, string> }; endpoints: { addresses: string[] }[]; ports: { port: number }[] };

if (canRunPrivileged('lab up --kubernetes')) {
  const lab = labPerFile({ dir: SAMPLES, name: LAB, kubernetes: true });
  const api = () => new KubeClient(loadKubeConfig({ kubeconfig: lab.state.apiserver!.kubeconfig }).kc);
  const clientPodPath = '/api/v1/namespaces/demo/pods/client';
  /** kubectl annotate's way: GET the Pod, change its annotations, PUT it back (with its resourceVersion) */
  const putAnnotation = async (value: string | undefined): Promise<number> => {
    const k = api();
    const pod = await k.get<Pod>(clientPodPath);
    const annotations = { ...pod.metadata.annotations };
    if (value === undefined) delete annotations['nodemesh.io/mesh'];
    else annotations['nodemesh.io/mesh'] = value;
    pod.metadata.annotations = annotations;
    const at = Date.now();
    await k.replace(clientPodPath, pod);
    return at;
  };
  const curlFrontend = () => lab.exec('demo/client', ['curl', '-sS', '--max-time', '5', 'http://frontend/']);
  const clientPid = () => lab.state.processes.find((p) => p.role === 'pod' && p.name === 'demo/client/client')!.pid;

  test.serial("the control plane watches the lab's API server: every pod with its lab IP, and EndpointSlices for the Services", async (t) => {
    const control = lab.state.processes.find((p) => p.role === 'control')!;
    t.deepEqual(control.argv.slice(control.argv.indexOf('--source'), control.argv.indexOf('--source') + 4), ['--source', 'kubernetes', '--kubeconfig', lab.state.apiserver!.kubeconfig]);
    t.false(control.argv.includes('--config-dir'));
    const pods = await api().get<{ items: Pod[] }>('/api/v1/namespaces/demo/pods');
    t.deepEqual(
      Object.fromEntries(pods.items.map((p) => [p.metadata.name, p.status?.podIP])),
      Object.fromEntries(lab.state.pods.filter((p) => p.namespace === 'demo').map((p) => [p.name, p.ip])),
    );
    const slices = await api().get<{ items: Slice[] }>('/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices');
    const backend = slices.items.filter((s) => s.metadata.labels?.['kubernetes.io/service-name'] === 'backend');
    t.deepEqual(backend.flatMap((s) => s.endpoints.flatMap((e) => e.addresses)).sort(), [lab.pod('backend-1').ip, lab.pod('backend-2').ip].sort());
    t.deepEqual(backend.flatMap((s) => s.ports.map((p) => p.port)), [8080], 'the named targetPort resolved as the controller does');
    // the control plane listed and watches them (its informers' counter)
    const cp = await scrape(lab.state.controlAddress!.admin);
    t.true(sumMetric(cp, 'nodemesh_kube_watch_events_total', { kind: 'Pod', event: 'list' }) >= 1);
    t.true(sumMetric(cp, 'nodemesh_kube_watch_events_total', { kind: 'EndpointSlice', event: 'list' }) >= 1);
  });

  test.serial('the sample traffic flows meshed: client → frontend → backend through the node proxies', async (t) => {
    const r = await curlFrontend();
    t.is(r.code, 0, r.stderr);
    const body = JSON.parse(r.stdout) as { frontend: { pod: string }; backend: { pod: string } };
    t.is(body.frontend.pod, 'frontend');
    t.regex(body.backend.pod, /^backend-[12]$/);
    // both hops counted by the source node proxies (client on node-b, frontend on node-a)
    const counted = async (node: string, source: string, service: string) =>
      eventually(
        async () => {
          const n = sumMetric(await scrape(lab.node(node).agentAdmin), 'istio_requests_total', { reporter: 'source', source_workload: source, destination_service: service });
          return n >= 1 ? n : undefined;
        },
        20_000,
        `${source} → ${service} counted on ${node}`,
      ).catch(() => 0);
    t.true((await counted('node-b', 'client', FRONTEND)) >= 1, 'client → frontend through node-b');
    t.true((await counted('node-a', 'frontend', BACKEND)) >= 1, 'frontend → backend through node-a');
  });

  test.serial("a PUT of the running client pod's annotation to the API server unmeshes it, and removing it meshes it again, each within the bound", async (t) => {
    const nodeB = lab.node('node-b').agentAdmin;
    const pid = clientPid();
    t.true((await enrolledPods(nodeB)).some((p) => p.uid === 'demo/client'), 'meshed by its namespace at first');

    let bound = optInBoundMs();
    let changed = await putAnnotation('disabled');
    const releasedAt = await waitEnrolment(nodeB, 'demo/client', false);
    t.log(`released ${releasedAt - changed} ms after the PUT (bound ${bound} ms)`);
    t.true(releasedAt - changed <= bound, `released ${releasedAt - changed} ms after the PUT (bound ${bound} ms)`);
    // its next connection is not redirected: a ClusterIP is unreachable without the mesh
    const out = await curlFrontend();
    t.is(out.code, 7, `curl: ${out.stderr}`);

    bound = optInBoundMs();
    changed = await putAnnotation(undefined);
    const enrolledAt = await waitEnrolment(nodeB, 'demo/client', true);
    t.log(`enrolled ${enrolledAt - changed} ms after the PUT (bound ${bound} ms)`);
    t.true(enrolledAt - changed <= bound, `enrolled ${enrolledAt - changed} ms after the PUT (bound ${bound} ms)`);
    const before = sumMetric(await scrape(nodeB), 'istio_requests_total', { reporter: 'source', source_workload: 'client', destination_service: FRONTEND });
    const back = await curlFrontend();
    t.is(back.code, 0, back.stderr);
    await eventually(async () => sumMetric(await scrape(nodeB), 'istio_requests_total', { reporter: 'source', source_workload: 'client', destination_service: FRONTEND }) > before, 20_000, 'the request through the mesh counted');
    t.is(clientPid(), pid);
    t.true(await isAlive(pid), 'the pod was not restarted');
  });

  test.serial("lab down ends the API server stand-in, also when the lab's state file is lost (a crash)", async (t) => {
    const apiserver = lab.state.processes.find((p) => p.role === 'apiserver')!;
    t.true(await isAlive(apiserver.pid));
    await rm(labStateFile(LAB)); // what a `lab up` that crashed before writing it leaves
    await labDown({ name: LAB });
    t.false(await isAlive(apiserver.pid), 'the API server stand-in still runs');
    await t.throwsAsync(access(lab.state.apiserver!.kubeconfig), undefined, 'its kubeconfig is gone with the state dir');
  });
}
