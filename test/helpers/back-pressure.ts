// Bodies that show back-pressure through a proxy: a writer that pushes a large body as fast as
// the way lets it, a reader that holds off, and a wait for the writer to stall. A proxy that
// read the body into memory would let the writer finish while nobody reads; one that streams
// holds it up once the buffers on the way (sockets, streams) are full.
import crypto from 'node:crypto';
import type http from 'node:http';
import type { Readable } from 'node:stream';
import { eventually } from './eventually.js';

/** Far more than every buffer between two loopback peers through a proxy. */
export const BIG = 48 * 1024 * 1024;

/** Waits until `count()` has not moved for a second (a writer held up by back-pressure). */
export async function stalls(count: () => number, what: string): Promise<void> {
  let last = -1;
  let still = 0;
  await eventually(
    () => {
      still = count() === last ? still + 1 : 0;
      last = count();
      return still >= 4;
    },
    30_000,
    what,
    250,
  );
}

/** A writer of BIG random bytes: how far it got, and the SHA-256 of what it wrote. */
export interface BigWriter {
  written(): number;
  sha256(): string;
}

/** Writes BIG bytes into `w` (a request or a response), waiting for 'drain' whenever it must, then ends it. */
export function writeBig(w: http.ClientRequest | http.ServerResponse): BigWriter {
  const chunk = crypto.randomBytes(64 * 1024);
  const hash = crypto.createHash('sha256');
  let n = 0;
  const pump = () => {
    while (n < BIG) {
      n += chunk.length;
      hash.update(chunk);
      if (!w.write(chunk)) return void w.once('drain', pump);
    }
    w.end();
  };
  pump();
  return { written: () => n, sha256: () => hash.digest('hex') };
}

/** Reads `r` to its end: `<bytes> <sha256>`. */
export function sizeAndHash(r: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = crypto.createHash('sha256');
    let n = 0;
    r.on('data', (d: Buffer) => ((n += d.length), hash.update(d)));
    r.on('end', () => resolve(`${n} ${hash.digest('hex')}`));
    r.on('error', reject);
    r.resume();
  });
}

/**
 * A request handler that reads nothing until `go()`, then answers `<bytes> <sha256>` of the
 * request body.
 */
export function heldSink(): { handler: http.RequestListener; go: () => void } {
  let go: () => void = () => {};
  const reading = new Promise<void>((r) => (go = r));
  const handler: http.RequestListener = (req, res) => {
    req.pause();
    void reading.then(() => sizeAndHash(req).then((s) => res.end(s)));
  };
  return { handler, go };
}
