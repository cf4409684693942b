// tcpdump on an interface of the root netns, for the tests that show what crosses a link.
import { spawn } from 'node:child_process';

/** Started and ready to capture (its "listening on" seen); `stop` ends it and waits for the file. */
export async function capture(iface: string, filter: string[], file: string): Promise<{ stop(): Promise<void> }> {
  // --immediate-mode: hand each packet over at once (else the ring buffer holds them and a
  // SIGINT can end the capture before they are written)
  const p = spawn('tcpdump', ['-i', iface, '--immediate-mode', '-U', '-n', '-s', '0', '-w', file, ...filter], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 10_000);
    p.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    p.once('exit', (code) => reject(new Error(`tcpdump exited ${code}: ${err}`)));
  });
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        p.once('exit', () => resolve());
        p.kill('SIGINT');
      }),
  };
}
