// `nodemesh tap`: streams the connections a node proxy handles, one line each, as
// `linkerd viz tap` does (the agent publishes them only while someone taps).
import http from 'node:http';
// `-o json` prints each event as the agent sends it, one JSON object per line (JSON Lines);
// `-o yaml` one YAML document per event.
import { stringify as yamlStringify } from 'yaml';
import { labState } from '../deploy/lab/lab.js';
import { adminHeaders, refusalHint } from './agent-admin.js';
import { outputFormat, type Values } from './command-table.js';

export async function runTap(v: Values): Promise<number> {
  const str = (x: unknown): string | undefined => (typeof x === 'string' ? x : undefined);
  const values = { agent: v.agent as string[] | undefined, name: str(v.name), node: str(v.node) };
  const format = outputFormat(v.output);
  const headers = adminHeaders(str(v['token-file']));
  let targets: string[];
  if (values.agent?.length) targets = values.agent;
  else {
    const s = await labState(values.name);
    targets = s.nodes.filter((n) => !values.node || n.name === values.node).map((n) => n.agentAdmin);
    if (targets.length === 0) throw new Error(`tap: lab ${s.name} has no node ${values.node}`);
  }
  await Promise.all(
    targets.map(
      (t) =>
        new Promise<void>((resolve, reject) => {
          http
            .get(`http://${t}/debug/tap`, { headers }, (res) => {
              const refused = refusalHint(res.statusCode ?? 0);
              if (res.statusCode !== 200) {
                res.resume();
                reject(new Error(`tap: ${t}: HTTP ${res.statusCode}${refused ? `: ${refused}` : ''}`));
                return;
              }
              res.setEncoding('utf8');
              let buf = '';
              res.on('data', (chunk: string) => {
                buf += chunk;
                let i;
                while ((i = buf.indexOf('\n')) >= 0) {
                  const e = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
                  buf = buf.slice(i + 1);
                  if (format === 'json' || format === 'yaml') {
                    const event = { agent: t, ...e };
                    process.stdout.write(format === 'json' ? `${JSON.stringify(event)}\n` : `---\n${yamlStringify(event)}`);
                    continue;
                  }
                  if (e.event === 'dropped') {
                    process.stdout.write(`${e.time} ${t} (${e.count} events dropped: this reader was too slow)\n`);
                    continue;
                  }
                  process.stdout.write(
                    `${e.time} ${t} ${e.event} ${e.sourceWorkload} ${e.source} -> ${e.originalDestination} ` +
                      `(${e.service}) via ${e.upstream || '-'} flags=${e.responseFlags}` +
                      (e.event === 'close' ? ` rx=${e.receivedBytes} tx=${e.sentBytes} ${e.durationMs}ms` : '') +
                      '\n',
                  );
                }
              });
              res.on('end', resolve);
            })
            .on('error', (err) => reject(new Error(`tap: cannot reach agent admin ${t}: ${err.message}`)));
        }),
    ),
  );
  return 0;
}
