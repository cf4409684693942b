// The whole path, end to end in the lab: an opted-in pod's connection to a ClusterIP that
// no interface owns is redirected in the kernel into its node's proxy, which picks the
// Service's endpoint on the other node; a pod without the annotation is not redirected;
// `lab down` leaves nothing behind.
import test from 'ava';
import { readdir } from 'node:fs/promises';
import { labDown } from '../../deploy/lab/lab.js';
import { scrape, sumMetric } from '../../cli/prom-text.js';
import { labPerFile } from '../helpers/lab-per-file.js';
import { canRunPrivileged, run } from '../helpers/privileged.js';
import { ourFindings, promtoolFindings } from '../helpers/promtool.js';
import { packagePath } from '../../common/paths.js';

const FIXTURE = packagePath('test', 'fixtures', 'mesh-basic');
const LAB = 't-mesh';

function curl(url: string): string[] {
  return ['curl', '-sS', '--max-time', '5', url];
}

if (canRunPrivileged('mesh redirect')) {
  const lab = labPerFile({ dir: FIXTURE, name: LAB });

  test.serial('an opted-in pod reaches a Service ClusterIP through its node proxy, and the right backend answers', async (t) => {
    const web = lab.service('web');
    const webPod = lab.pod('web-1');
    const nodeA = lab.node('node-a');
    const nodeB = lab.node('node-b');

    // nobody owns the ClusterIP: no interface in any of the lab's namespaces has it
    for (const netns of [...lab.state.nodes.map((n) => n.netns), ...lab.state.pods.map((p) => p.netns)]) {
      const addrs = await run('ip', ['-n', netns, '-j', 'addr']);
      t.false(addrs.stdout.includes(`"${web.clusterIp}"`), `${netns} owns ${web.clusterIp}`);
    }

    const before = sumMetric(await scrape(nodeA.agentAdmin), 'istio_tcp_connections_opened_total', {
      destination_service: 'web.shop.svc.cluster.local',
      source_workload: 'client',
    });
    const res = await lab.exec('shop/client', curl(`http://web.shop:80/hello`));
    t.is(res.code, 0, res.stderr);
    const body = JSON.parse(res.stdout) as { pod: string; remote: string; path: string };
    t.is(body.pod, 'web-1', 'the Service selects web-1 only');
    t.is(body.path, '/hello');

    // web-1 is not meshed: no proxy of its node delivers to it, and its answers to a pod
    // address would not come back to node-a's proxy; it sees the connection arrive from the
    // node proxy (a node address), not the pod (ARCHITECTURE.md, issue 10)
    const remoteIp = body.remote.replace(/:\d+$/, '').replace(/^::ffff:/, '');
    const clientIp = lab.pod('client').ip;
    t.not(remoteIp, clientIp);
    t.true([nodeA.ip, nodeA.podBridgeIp].includes(remoteIp), `backend saw ${remoteIp}; node-a is ${nodeA.ip}/${nodeA.podBridgeIp}`);
    t.is(webPod.node, nodeB.name);

    // the node proxy counted the connection, with Istio's labels
    const samples = await scrape(nodeA.agentAdmin);
    const after = sumMetric(samples, 'istio_tcp_connections_opened_total', {
      destination_service: 'web.shop.svc.cluster.local',
      source_workload: 'client',
      destination_workload: 'web-1',
      reporter: 'source',
    });
    t.is(after - before, 1);
    t.true(sumMetric(samples, 'istio_tcp_received_bytes_total', { destination_service: 'web.shop.svc.cluster.local' }) > 0);
  });

  test.serial("the agent's /metrics passes promtool's exposition checks", async (t) => {
    const nodeA = lab.node('node-a');
    const text = await (await fetch(`http://${nodeA.agentAdmin}/metrics`)).text();
    // a parse error fails outright; lint findings only those test/helpers/promtool.ts tolerates
    t.deepEqual(ourFindings(await promtoolFindings(text)), []);
  });

  test.serial('a pod without the annotation is not redirected', async (t) => {
    const web = lab.service('web');
    const webPod = lab.pod('web-1');
    const plain = lab.pod('plain');
    const nodeA = lab.node('node-a');
    const opened = async () => sumMetric(await scrape(nodeA.agentAdmin), 'istio_tcp_connections_opened_total', { source_workload: 'plain' });
    const before = await opened();

    // no kube-proxy in the lab: without the mesh a ClusterIP leads nowhere
    const viaVip = await lab.exec('shop/plain', curl(`http://${web.clusterIp}/`));
    t.not(viaVip.code, 0, 'a ClusterIP is only reachable through the mesh');

    // straight to the pod it works, and the backend sees the pod itself, not a proxy
    const direct = await lab.exec('shop/plain', curl(`http://${webPod.ip}:8080/`));
    t.is(direct.code, 0, direct.stderr);
    const body = JSON.parse(direct.stdout) as { remote: string };
    t.is(body.remote.replace(/:\d+$/, '').replace(/^::ffff:/, ''), plain.ip);
    t.is(await opened(), before, 'the node proxy saw nothing from the plain pod');
  });

  test.serial('lab down leaves no netns, cgroup, bpffs pin or process behind', async (t) => {
    const cgroupRoot = lab.state.cgroupRoot!;
    await labDown({ name: LAB });
    const netns = await run('ip', ['netns', 'list']);
    t.false(netns.stdout.includes(`nm-${LAB}-`), netns.stdout);
    const pins = await readdir('/sys/fs/bpf').catch(() => [] as string[]);
    t.deepEqual(
      pins.filter((p) => p.includes(`nodemesh-lab-${LAB}`)),
      [],
    );
    await t.throwsAsync(readdir(cgroupRoot), { code: 'ENOENT' });
    const procs = await run('pgrep', ['-f', `nodemesh-lab-${LAB}|nm-${LAB}-`]);
    t.is(procs.stdout.trim(), '');
    const links = await run('ip', ['-j', 'link']);
    t.false(links.stdout.includes(`"nm${lab.state.slot}`), 'a veth or bridge of the lab is left');
  });
}
