// HTTP/2 (h2c with prior knowledge: gRPC, and what the source's L7 engine sends for an h2
// client) at the destination, observed rather than served, under the same conditions as
// HTTP/1.1 (inbound-observed.ts): a port declared HTTP, HTTP/2 or gRPC, a workload with no
// AuthorizationPolicy testing HTTP attributes, the connection over HBONE, no trace
// collector. Serving it meant Node's HTTP/2 server over the HBONE stream and an HTTP/2
// client to the pod, each header block decoded, re-encoded and every DATA frame copied
// through two sessions: the destination agent cost as much CPU per request as the source's
// whole L7 engine (ARCHITECTURE.md, "Where the proxies' CPU goes"). Now the bytes are
// relayed as on an L4 port (transport/relay.ts) while a frame reader per direction watches
// them: frame headers, header blocks (HPACK, transport/hpack-decoder.ts: one decoder per
// direction, fed every block in order as the endpoint's is), DATA lengths, END_STREAM and
// RST_STREAM. Each client stream is one reporter="destination" request: `:method`, `:path`,
// `:authority`, the request's fields (the access log's), `:status` of the first final
// response head, `grpc-status` of a gRPC call (trailers, or a trailers-only response), body
// sizes (DATA payloads without padding), the duration and the time to the response head.
//
// What the observer keeps of HTTP/2:
// - A stream is reported when both sides have ended it (END_STREAM), or when either resets
//   it: DC when the client reset it, UR when the pod did (Envoy's upstream reset), with the
//   status of the response head if one came; a reset after the whole response (a server
//   stopping an upload it has already answered) adds no flag.
// - 1xx heads before the final one are not the answer; a pushed stream (even id, from a
//   PUSH_PROMISE) is no request of the client's, but its header blocks are decoded all the
//   same (the decoder's table must stay the pod's).
// - Nothing is refused or changed: the pod's own HTTP/2 server judges the client's bytes and
//   the client the pod's (a byte pipe's semantics). Bytes the observer cannot read — a
//   header block HPACK cannot decode, a malformed frame sequence, a header block over 64 KiB
//   or one that decodes to a header list over 64 KiB, more than MAX_STREAMS open streams —
//   end the observation of the connection: its bytes
//   pass, the streams still open are reported with response flag UPE (upstream protocol
//   error), and later ones are not counted.
// - The connection's close reports what is still open: UC when the pod's side ended first,
//   DC otherwise (as for HTTP/1.1).
// - Policy and timeouts are a pipe's, as for HTTP/1.1: a later policy with HTTP attributes
//   judges the connection as TCP and the client's next connection is served per request;
//   a connection with no byte either way for the HTTP idle timeout is closed.
import type { Duplex } from 'node:stream';
import { logger } from '../../common/log.js';
import { InboundRequest, RawHeaderFields } from '../telemetry/inbound-requests.js';
import { requestDone } from '../telemetry/request-record.js';
import { HpackDecoder } from '../transport/hpack-decoder.js';
import type { RelayTap } from '../transport/relay.js';
import { ResponseFlag, withResponseFlag } from '../transport/response-flags.js';
import type { ObservedOptions } from './inbound-observed.js';

const log = logger('agent/inbound-observed-h2');

/** The client connection preface (RFC 9113 §3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** A header block (with its CONTINUATIONs) this large ends the observation. */
const MAX_HEADER_BLOCK = 64 * 1024;
/**
 * A header list this large (names, values and 32 octets a field, as SETTINGS_MAX_HEADER_LIST_SIZE
 * counts) ends it too: a record keeps its request's fields until the stream ends, so this and
 * MAX_STREAMS bound what one connection holds. Node's HTTP/2 server refuses larger lists itself.
 */
const MAX_HEADER_LIST = 64 * 1024;
/** Open streams on one connection before the observation ends (the served path's SETTINGS_MAX_CONCURRENT_STREAMS). */
export const MAX_STREAMS = 1000;

const DATA = 0;
const HEADERS = 1;
const RST_STREAM = 3;
const PUSH_PROMISE = 5;
const CONTINUATION = 9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

/** Envoy's Grpc::Common::hasGrpcContentType, as the served path's. */
const GRPC_CONTENT_TYPE = /^application\/grpc($|[+;])/i;

/** Bytes the observer cannot read: it stops watching the connection. */
class Unreadable extends Error {}

/**
 * The observer of one connection whose first bytes are the HTTP/2 preface: its two taps go
 * on the relay of `stream` (the inbound side) and `pod`, which the caller joins and ends on
 * errors and idleness, as a pipe. Its records end when `stream` closes.
 */
export function observeHttp2(stream: Duplex, pod: Duplex, o: ObservedOptions): { requests: RelayTap; responses: RelayTap } {
  const x = new H2Exchange(o);
  stream.once('close', () => x.close());
  pod.once('close', () => (x.podGone = true));
  return x;
}

/** One client stream: its request record and how far each side is. */
interface ObservedStream {
  readonly id: number;
  readonly rec: InboundRequest;
  readonly grpc: boolean;
  /** a final response head came */
  responded: boolean;
  requestEnded: boolean;
  responseEnded: boolean;
}

/** The frames of one direction, read as they pass (no byte changed, none held). */
class FrameReader {
  /** the client's side starts with the preface: how much of it is still to come */
  private prefaceAt: number;
  private readonly head = Buffer.alloc(9);
  private headAt = 0;
  private type = 0;
  private flags = 0;
  private streamId = 0;
  /** payload bytes of the current frame still to come */
  private remaining = 0;
  /** the current frame's payload is kept (a header block, RST_STREAM) */
  private keep: Buffer | undefined;
  private keepAt = 0;
  /** DATA with PADDED: its first payload byte (the pad length) is still to come */
  private padLengthNext = false;
  /** a header block continued in CONTINUATION frames: its fragments so far */
  private block: Buffer[] | undefined;
  private blockBytes = 0;
  private blockStream = 0;
  private blockFlags = 0;
  private blockIsPush = false;

  constructor(
    private readonly client: boolean,
    private readonly x: H2Exchange,
    private readonly hpack = new HpackDecoder({ maxListSize: MAX_HEADER_LIST }),
  ) {
    this.prefaceAt = client ? 0 : PREFACE.length;
  }

  read(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.prefaceAt < PREFACE.length) {
        if (chunk[i] !== PREFACE[this.prefaceAt]) throw new Unreadable('no HTTP/2 connection preface');
        this.prefaceAt++;
        i++;
        continue;
      }
      if (this.remaining === 0 && this.headAt < 9) {
        const take = Math.min(9 - this.headAt, n - i);
        chunk.copy(this.head, this.headAt, i, i + take);
        this.headAt += take;
        i += take;
        if (this.headAt === 9) this.frameHead();
        continue;
      }
      // payload
      const take = Math.min(this.remaining, n - i);
      if (this.keep) {
        chunk.copy(this.keep, this.keepAt, i, i + take);
        this.keepAt += take;
      } else if (this.padLengthNext) {
        // DATA's pad length and its padding are no body
        this.padLengthNext = false;
        this.x.body(this.client, this.streamId, -1 - chunk[i]!);
      }
      this.remaining -= take;
      i += take;
      if (this.remaining === 0) this.frameEnd();
    }
  }

  private frameHead(): void {
    const h = this.head;
    const length = (h[0]! << 16) | (h[1]! << 8) | h[2]!;
    this.type = h[3]!;
    this.flags = h[4]!;
    this.streamId = h.readUInt32BE(5) & 0x7fffffff;
    this.remaining = length;
    if (this.block !== undefined && (this.type !== CONTINUATION || this.streamId !== this.blockStream))
      throw new Unreadable(`frame type ${this.type} inside a header block of stream ${this.blockStream}`);
    const kept = this.type === HEADERS || this.type === CONTINUATION || this.type === PUSH_PROMISE || this.type === RST_STREAM;
    if (kept) {
      if (this.blockBytes + length > MAX_HEADER_BLOCK) throw new Unreadable(`a header block over ${MAX_HEADER_BLOCK} bytes`);
      this.keep = Buffer.allocUnsafe(length);
      this.keepAt = 0;
    } else if (this.type === DATA) {
      this.x.body(this.client, this.streamId, length);
      this.padLengthNext = (this.flags & PADDED) !== 0 && length > 0;
    }
    if (length === 0) this.frameEnd();
  }

  private frameEnd(): void {
    const payload = this.keep;
    this.keep = undefined;
    this.headAt = 0;
    this.padLengthNext = false;
    const id = this.streamId;
    switch (this.type) {
      case DATA:
        if (this.flags & END_STREAM) this.x.ended(this.client, id);
        return;
      case HEADERS:
      case PUSH_PROMISE: {
        let from = 0;
        let to = payload!.length;
        if (this.flags & PADDED) {
          if (to < 1) throw new Unreadable('padded frame without its pad length');
          to -= payload![0]!;
          from = 1;
        }
        if (this.type === HEADERS && this.flags & PRIORITY) from += 5;
        if (this.type === PUSH_PROMISE) from += 4;
        if (to < from) throw new Unreadable('padding or priority past the frame');
        this.block = [payload!.subarray(from, to)];
        this.blockBytes = to - from;
        this.blockStream = id;
        this.blockFlags = this.flags;
        this.blockIsPush = this.type === PUSH_PROMISE;
        if (this.flags & END_HEADERS) this.headerBlock();
        return;
      }
      case CONTINUATION:
        if (this.block === undefined) throw new Unreadable('CONTINUATION without a header block');
        this.block.push(payload!);
        this.blockBytes += payload!.length;
        if (this.flags & END_HEADERS) this.headerBlock();
        return;
      case RST_STREAM:
        this.x.reset(this.client, id);
        return;
      default:
        // SETTINGS, PING, GOAWAY, WINDOW_UPDATE, PRIORITY, unknown types: nothing to count
        return;
    }
  }

  private headerBlock(): void {
    const parts = this.block!;
    this.block = undefined;
    this.blockBytes = 0;
    const fields = this.hpack.decode(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    if (this.blockIsPush) return; // a promised request: decoded for the table's sake only
    const end = (this.blockFlags & END_STREAM) !== 0;
    if (this.client) this.x.requestHeaders(this.blockStream, fields, end);
    else this.x.responseHeaders(this.blockStream, fields, end);
  }
}

/** One side of the connection as a relay tap: its bytes are read as they pass, never held or refused. */
class SideTap implements RelayTap {
  readonly holding = false;
  constructor(
    private readonly x: H2Exchange,
    private readonly client: boolean,
  ) {}
  read(chunk: Buffer): boolean {
    this.x.read(this.client, chunk);
    return true;
  }
  ended(): void {
    if (!this.client) this.x.podGone = true;
  }
}

/** One observed connection: a frame reader per direction and the streams open on it. */
class H2Exchange {
  readonly requests = new SideTap(this, true);
  readonly responses = new SideTap(this, false);
  private readonly fromClient = new FrameReader(true, this);
  private readonly fromPod = new FrameReader(false, this);
  private readonly streams = new Map<number, ObservedStream>();
  private opaque = false;
  private closed = false;
  podGone = false;

  constructor(private readonly o: ObservedOptions) {}

  read(client: boolean, chunk: Buffer): void {
    if (this.opaque || this.closed) return;
    try {
      (client ? this.fromClient : this.fromPod).read(chunk);
    } catch (err) {
      log.debug({ side: client ? 'client' : 'pod', reason: (err as Error).message }, 'observed HTTP/2 unreadable: no longer observed');
      this.stopObserving();
    }
  }

  requestHeaders(id: number, fields: string[], end: boolean): void {
    const s = this.streams.get(id);
    if (s !== undefined) {
      // the request's trailers
      if (end) this.ended(true, id);
      return;
    }
    if ((id & 1) === 0) return; // not a client stream: the pod's server will refuse it
    if (this.streams.size >= MAX_STREAMS) throw new Unreadable(`over ${MAX_STREAMS} streams open`);
    const h = new RawHeaderFields(fields);
    const grpc = GRPC_CONTENT_TYPE.test(h.get('content-type') ?? '');
    const rec = new InboundRequest(
      this.o.telemetry,
      h.get(':method') ?? '',
      h.get(':path') ?? '',
      h.get(':authority') ?? h.get('host') ?? '',
      'HTTP/2',
      this.o.downstreamRemote,
      h,
      true,
    );
    this.streams.set(id, { id, rec, grpc, responded: false, requestEnded: end, responseEnded: false });
  }

  responseHeaders(id: number, fields: string[], end: boolean): void {
    const s = this.streams.get(id);
    if (s === undefined) return;
    const h = new RawHeaderFields(fields);
    if (!s.responded) {
      const status = Number(h.get(':status'));
      // 1xx before the final head is not the answer
      if (status >= 100 && status < 200 && !end) return;
      s.responded = true;
      s.rec.responded(status || 0);
    }
    if (s.grpc) {
      const gs = h.get('grpc-status');
      if (gs !== undefined) s.rec.grpcStatus = gs;
    }
    if (end) this.ended(false, id);
  }

  /** DATA payload bytes (negative: the pad length byte and padding taken back). */
  body(client: boolean, id: number, bytes: number): void {
    const s = this.streams.get(id);
    if (s === undefined) return;
    if (client) s.rec.reqBytes += bytes;
    else s.rec.respBytes += bytes;
  }

  ended(client: boolean, id: number): void {
    const s = this.streams.get(id);
    if (s === undefined) return;
    if (client) s.requestEnded = true;
    else s.responseEnded = true;
    if (s.requestEnded && s.responseEnded) this.report(s);
  }

  reset(client: boolean, id: number): void {
    const s = this.streams.get(id);
    if (s === undefined) return;
    // a reset after the whole response (a server stopping an upload it has answered) takes nothing from it
    if (!s.responseEnded)
      s.rec.flags = withResponseFlag(s.rec.flags, client ? ResponseFlag.DownstreamConnectionTermination : ResponseFlag.UpstreamReset);
    this.report(s);
  }

  private report(s: ObservedStream): void {
    this.streams.delete(s.id);
    const rec = s.rec;
    if (s.grpc && rec.grpcStatus === '') rec.grpcStatus = '-';
    rec.end();
    requestDone(this.o.telemetry.labels(s.grpc), rec);
  }

  private reportAll(flag: string): void {
    for (const s of [...this.streams.values()]) {
      s.rec.flags = withResponseFlag(s.rec.flags, flag);
      this.report(s);
    }
  }

  private stopObserving(): void {
    this.opaque = true;
    this.reportAll(ResponseFlag.UpstreamProtocolError);
  }

  /** The client's side closed: what is still open is reported. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reportAll(this.podGone ? ResponseFlag.UpstreamConnectionTermination : ResponseFlag.DownstreamConnectionTermination);
  }
}
