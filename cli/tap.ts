// `nodemesh tap`: streams what node proxies handle, live, as `linkerd viz tap` does (the agent
// publishes events only while someone taps). By default one line per connection (open,
// close); with --requests one line per HTTP request at each reporter that saw it, filtered by
// the agent (agent/telemetry/tap.ts requestFilter) so that only what is asked for crosses the
// wire: --namespace, --to, --pod, --path, --method, --status, --reporter.
// `-o json` prints each event as the agent sends it (plus the agent's address), one JSON
// object per line (JSON Lines); `-o yaml` one YAML document per event. --count N stops after
// N events (scripts, tests).
import http from 'node:http';
import { stringify as yamlStringify } from 'yaml';
import { labState } from '../deploy/lab/lab.js';
import { adminHeaders, refusalHint } from './agent-admin.js';
import { outputFormat, UsageError, type Values } from './command-table.js';

/** The request filters `nodemesh tap --requests` passes to the agents, flag name = query name. */
export const REQUEST_FILTERS = ['namespace', 'to', 'pod', 'path', 'method', 'status', 'reporter'] as const;

/** The tap's query: `requests` and the filters given; filters without --requests are a usage error. */
export function tapQuery(v: Values): string {
  const q = new URLSearchParams();
  const requests = v.requests === true;
  for (const f of REQUEST_FILTERS) {
    const x = v[f];
    if (typeof x !== 'string') continue;
    if (!requests) throw new UsageError(`--${f} filters requests: add --requests (connections are not filtered)`);
    q.set(f, x);
  }
  if (requests) return `?requests${q.size ? `&${q}` : ''}`;
  return '';
}

function requestLine(t: string, e: Record<string, unknown>): string {
  const end = (pod: unknown, workload: unknown, ns: unknown) => `${ns}/${pod || workload}`;
  return (
    `${e.time} ${t} ${e.reporter} ${e.method} ${e.authority}${e.path} -> ${e.status} ${e.latencyMs}ms flags=${e.responseFlags}` +
    ` ${end(e.sourcePod, e.sourceWorkload, e.sourceNamespace)} -> ${end(e.destinationPod, e.destinationWorkload, e.destinationNamespace)}` +
    (e.upstream ? ` via ${e.upstream}` : '') +
    (Number(e.retries) > 0 ? ` retries=${e.retries}` : '') +
    '\n'
  );
}

function connectionLine(t: string, e: Record<string, unknown>): string {
  return (
    `${e.time} ${t} ${e.event} ${e.sourceWorkload} ${e.source} -> ${e.originalDestination} ` +
    `(${e.service}) via ${e.upstream || '-'} flags=${e.responseFlags}` +
    (e.event === 'close' ? ` rx=${e.receivedBytes} tx=${e.sentBytes} ${e.durationMs}ms` : '') +
    '\n'
  );
}

export async function runTap(v: Values): Promise<number> {
  const str = (x: unknown): string | undefined => (typeof x === 'string' ? x : undefined);
  const values = { agent: v.agent as string[] | undefined, name: str(v.name), node: str(v.node) };
  const format = outputFormat(v.output);
  const query = tapQuery(v);
  const count = v.count === undefined ? Infinity : Number(v.count);
  if (!(count === Infinity || (Number.isInteger(count) && count > 0))) throw new UsageError(`--count ${String(v.count)}: expected a positive whole number of events`);
  const headers = adminHeaders(str(v['token-file']));
  let targets: string[];
  if (values.agent?.length) targets = values.agent;
  else {
    const s = await labState(values.name);
    targets = s.nodes.filter((n) => !values.node || n.name === values.node).map((n) => n.agentAdmin);
    if (targets.length === 0) throw new Error(`tap: lab ${s.name} has no node ${values.node}`);
  }
  let shown = 0;
  const requests: http.ClientRequest[] = [];
  const enough = () => {
    for (const r of requests) r.destroy();
  };
  await Promise.all(
    targets.map(
      (t) =>
        new Promise<void>((resolve, reject) => {
          const req = http
            .get(`http://${t}/debug/tap${query}`, { headers }, (res) => {
              const refused = refusalHint(res.statusCode ?? 0);
              if (res.statusCode !== 200) {
                let body = '';
                res.setEncoding('utf8').on('data', (d: string) => (body = (body + d).slice(0, 2000)));
                res.on('end', () => reject(new Error(`tap: ${t}: HTTP ${res.statusCode}${refused ? `: ${refused}` : body ? `: ${body.trim()}` : ''}`)));
                return;
              }
              res.setEncoding('utf8');
              let buf = '';
              res.on('data', (chunk: string) => {
                buf += chunk;
                let i;
                while (shown < count && (i = buf.indexOf('\n')) >= 0) {
                  const e = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
                  buf = buf.slice(i + 1);
                  if (e.event !== 'dropped') shown++;
                  if (format === 'json' || format === 'yaml') {
                    const event = { agent: t, ...e };
                    process.stdout.write(format === 'json' ? `${JSON.stringify(event)}\n` : `---\n${yamlStringify(event)}`);
                  } else if (e.event === 'dropped') {
                    process.stdout.write(`${e.time} ${t} (${e.count} events dropped: this reader was too slow)\n`);
                  } else {
                    process.stdout.write(e.event === 'request' ? requestLine(t, e) : connectionLine(t, e));
                  }
                }
                if (shown >= count) enough();
              });
              res.on('end', resolve);
              res.on('close', resolve);
            })
            .on('error', (err) => (shown >= count ? resolve() : reject(new Error(`tap: cannot reach agent admin ${t}: ${err.message}`))));
          requests.push(req);
        }),
    ),
  );
  return 0;
}
