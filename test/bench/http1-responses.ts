// Reads HTTP/1.1 responses off a keep-alive connection, as bytes arrive, without building
// objects per response: the open-loop generator's parser (node:http's client would cost the
// generator more CPU than the proxy under test at 5,000 req/s). Handles Content-Length and
// chunked bodies and responses split anywhere across reads. Pure; the unit test feeds it
// responses cut at every byte.

const CRLF2 = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');

export class Http1Responses {
  private buf: Buffer = Buffer.alloc(0);
  /** 'head' waiting for the header block; 'body' for `remaining` bytes; 'chunk-size'/'chunk-data'/'trailers' in a chunked body */
  private state: 'head' | 'body' | 'chunk-size' | 'chunk-data' | 'trailers' = 'head';
  private remaining = 0;
  private status = 0;
  /** the last response said `Connection: close` */
  closeAfter = false;

  /** @param onResponse called once per complete response with its status code */
  constructor(private readonly onResponse: (status: number) => void) {}

  /** Feeds bytes; throws on a response it cannot read (the connection is then unusable). */
  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.state === 'head') {
        const end = this.buf.indexOf(CRLF2);
        if (end < 0) {
          if (this.buf.length > 64 * 1024) throw new Error('response header block over 64 KiB');
          return;
        }
        const empty = this.readHead(this.buf.toString('latin1', 0, end));
        this.buf = this.buf.subarray(end + 4);
        if (empty) this.done();
      } else if (this.state === 'body') {
        const take = Math.min(this.remaining, this.buf.length);
        this.remaining -= take;
        this.buf = this.buf.subarray(take);
        if (this.remaining > 0) return;
        this.done();
      } else if (this.state === 'chunk-size') {
        const eol = this.buf.indexOf(CRLF);
        if (eol < 0) return;
        const size = parseInt(this.buf.toString('latin1', 0, eol).split(';', 1)[0]!.trim(), 16);
        if (!Number.isFinite(size) || size < 0)
          throw new Error(`bad chunk size line ${JSON.stringify(this.buf.toString('latin1', 0, eol))}`);
        this.buf = this.buf.subarray(eol + 2);
        if (size === 0) this.state = 'trailers';
        else {
          this.state = 'chunk-data';
          this.remaining = size + 2; // the data and its CRLF
        }
      } else if (this.state === 'chunk-data') {
        const take = Math.min(this.remaining, this.buf.length);
        this.remaining -= take;
        this.buf = this.buf.subarray(take);
        if (this.remaining > 0) return;
        this.state = 'chunk-size';
      } else {
        // trailers: lines until an empty one
        const eol = this.buf.indexOf(CRLF);
        if (eol < 0) return;
        this.buf = this.buf.subarray(eol + 2);
        if (eol === 0) this.done();
      }
    }
  }

  /** Reads the status and framing headers; true when the response has no body at all. */
  private readHead(head: string): boolean {
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!m) throw new Error(`not an HTTP/1.1 status line: ${JSON.stringify(lines[0])}`);
    this.status = Number(m[1]);
    let length = -1;
    let chunked = false;
    this.closeAfter = false;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line
        .slice(colon + 1)
        .trim()
        .toLowerCase();
      if (name === 'content-length') length = Number(value);
      else if (name === 'transfer-encoding') chunked = value.split(',').some((v) => v.trim() === 'chunked');
      else if (name === 'connection') this.closeAfter = value.split(',').some((v) => v.trim() === 'close');
    }
    if (chunked) {
      this.state = 'chunk-size';
      return false;
    }
    if (length >= 0) {
      this.state = 'body';
      this.remaining = length;
      return length === 0;
    }
    if (this.status === 204 || this.status === 304 || (this.status >= 100 && this.status < 200)) return true;
    throw new Error(`response ${this.status} has neither Content-Length nor chunked encoding (a body until close cannot be kept alive)`);
  }

  private done(): void {
    this.state = 'head';
    this.remaining = 0;
    if (this.status >= 200) this.onResponse(this.status); // 1xx: the real response follows
  }
}
