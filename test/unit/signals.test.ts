// The long-running commands' wait for SIGTERM/SIGINT (cli/signals.ts), in a child process
// that real signals are sent to.
import test from 'ava';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SIGNALS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/signals.js');

/** Runs `body` (an async function's body, `untilSignal` in scope) in a child; says "ready" signals come from the test. */
function child(body: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  // the interval stands for the command's own work (a real agent's sockets and timers): the
  // signal listener alone keeps no process alive, and the child ends when the body is done
  const script = `const { untilSignal } = await import(${JSON.stringify(SIGNALS)});\nconst busy = setInterval(() => {}, 1000);\n${body}\nclearInterval(busy);`;
  const c = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  c.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('ready\n')) {
      out = out.replace('ready\n', '');
      c.kill('SIGTERM');
    }
  });
  return new Promise((resolve) => c.once('close', (code, signal) => resolve({ code, signal, out })));
}

test('a SIGTERM between two waits does not kill the process: the next wait gets it (a stop’s second signal cuts its drain)', async (t) => {
  const r = await child(`
    const wait = untilSignal();
    console.log('ready');
    const first = await wait;
    // nothing waits now: a listener removed here used to leave the default action (death)
    process.kill(process.pid, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    const second = await untilSignal();
    console.log(JSON.stringify([first, second]));
  `);
  t.is(r.signal, null, 'the process was not killed by the signal');
  t.is(r.code, 0);
  t.deepEqual(JSON.parse(r.out), ['SIGTERM', 'SIGTERM']);
});

test('every wait open when a signal comes gets it, and the process still exits on its own afterwards', async (t) => {
  const r = await child(`
    const a = untilSignal();
    const b = untilSignal();
    console.log('ready');
    console.log(JSON.stringify(await Promise.all([a, b])));
  `);
  t.is(r.code, 0, 'the kept listener holds nothing open');
  t.deepEqual(JSON.parse(r.out), ['SIGTERM', 'SIGTERM']);
});
