// `nodemesh tap`: streams the connections a node proxy handles, one line each, as
// `linkerd viz tap` does (the agent publishes them only while someone taps).
import http from 'node:http';
import { parseArgs } from 'node:util';
import { labState } from '../deploy/lab/lab.js';
import { adminHeaders, refusalHint } from './agent-admin.js';

export async function runTap(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { agent: { type: 'string' }, name: { type: 'string' }, node: { type: 'string' }, 'token-file': { type: 'string' } } });
  const headers = adminHeaders(values['token-file']);
  let targets: string[];
  if (values.agent) targets = [values.agent];
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
