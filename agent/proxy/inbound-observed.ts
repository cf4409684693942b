// HTTP/1.1 at the destination, observed rather than served: for a connection to a port
// declared HTTP whose workload has no AuthorizationPolicy testing HTTP attributes, arriving
// over HBONE (mutual TLS: a mesh proxy sent it, and the source's L7 engine already gave each
// request its x-request-id), while no trace collector is configured (nothing needs adding to
// a request). The proxy then changes nothing in the requests or the responses: the bytes are
// relayed as on an L4 port (transport/relay.ts), and two llhttp parsers — Node's own, the one
// its HTTP server and client read with — watch them on the way, one per direction, to report
// reporter="destination" request metrics and access logs (method, path, authority, headers,
// status, body sizes, duration, time to the response head). Serving such a connection with
// Node's HTTP server and an undici client cost the destination agent about as much CPU per
// request as the source's whole L7 engine, for no change in the request (ARCHITECTURE.md,
// "Where the proxies' CPU goes").
//
// What the observer keeps of HTTP:
// - Responses answer requests in order (pipelining): each request's record waits in a queue
//   for its response; a HEAD's response has no body (the parser is told, as Node's client
//   tells it); 1xx responses before the final one are not the answer.
// - Framing is strict, as the served path's: a request that llhttp cannot read is not passed
//   on; the client gets 400 (or, with responses still owed, a reset) and the pod connection
//   is closed, so the pod never reads a request the proxy would have read differently.
// - An Upgrade or CONNECT request ends the observation of requests (what follows is another
//   protocol); its response (101, or 2xx for CONNECT) is counted and ends the observation of
//   responses. A refused upgrade leaves the rest of the connection unobserved: its bytes pass,
//   its requests are not counted.
// - A response llhttp cannot read is passed on all the same (the pod speaks for itself), and
//   the connection is not observed further; the requests still waiting are reported with
//   status 0 and response flag UPE (upstream protocol error).
// - A request whose response never came is reported when the connection closes: UC when the
//   pod's side ended first, DC otherwise, with the status of its response head if one came.
// - Holding: at MAX_AWAITING requests awaiting their responses the client's side is no
//   longer read until responses catch up (Node's server pauses a pipelining client likewise),
//   so one connection's records stay bounded.
// - Policy: the connection is a byte pipe to authorization (authorized-connections.ts, mode
//   'pipe'): a later policy that tests HTTP attributes judges it as TCP, and the client's next
//   connection is served per request.
// - Timeouts: a connection with no byte either way for the HTTP idle timeout is closed (the
//   socket's timer, as a pipe's); a slow request head is the pod's server's to time out, as
//   on an L4 port.
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import { logger } from '../../common/log.js';
import { InboundRequest, RawHeaderFields, type InboundTelemetry } from '../telemetry/inbound-requests.js';
import { requestDone } from '../telemetry/request-record.js';
import type { RelayTap } from '../transport/relay.js';
import { ResponseFlag, withResponseFlag } from '../transport/response-flags.js';

const log = logger('agent/inbound-observed');

/** Node's binding of llhttp (lib/_http_common.js), as its HTTP server and client drive it. */
interface HttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** bytes parsed, or the parse error (code HPE_…) */
  execute(chunk: Buffer): number | (Error & { code?: string });
  /** the end of input: completes a message read until close */
  finish(): (Error & { code?: string }) | undefined;
  close(): void;
  [kExchange]: ObservedExchange;
  [slot: number]: unknown;
}
interface HttpParserClass {
  new (): HttpParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
}
const require = createRequire(import.meta.url);
const { HTTPParser, methods } = require('_http_common') as { HTTPParser: HttpParserClass; methods: string[] };

/** Request heads up to this size, as the served path's server reads them. */
const MAX_HEADER_SIZE = 64 * 1024;
/** Requests awaiting their responses on one connection before the client is no longer read. */
export const MAX_AWAITING = 128;
/** llhttp's on_headers_complete answers: the message has no body (HEAD); no body and no more messages (CONNECT's 2xx). */
const SKIP_BODY = 1;
const TUNNEL = 2;

const kExchange = Symbol('nodemesh.observedExchange');

export interface ObservedOptions {
  telemetry: InboundTelemetry;
  /** the peer as the proxy saw it (the access log's downstream address) */
  downstreamRemote: string;
}

/**
 * The observer of one connection whose first bytes are an HTTP/1.x request line: its two
 * taps go on the relay of `stream` (the inbound side) and `pod` (see above), which the
 * caller joins, and ends on errors and idleness, as a pipe. Its records end when `stream`
 * closes.
 */
export function observeHttp1(stream: Duplex, pod: Duplex, o: ObservedOptions): { requests: RelayTap; responses: RelayTap } {
  const x = new ObservedExchange(stream, pod, o);
  stream.once('close', () => x.close());
  pod.once('close', () => x.podClosed());
  return x;
}

function newParser(type: number, x: ObservedExchange): HttpParser {
  const p = new HTTPParser();
  p.initialize(type, {}, MAX_HEADER_SIZE, 0);
  p[kExchange] = x;
  p[HTTPParser.kOnHeaders] = onHeaders;
  p[HTTPParser.kOnBody] = onBody;
  p[HTTPParser.kOnMessageComplete] = onMessageComplete;
  p[HTTPParser.kOnHeadersComplete] = type === HTTPParser.REQUEST ? onRequestHead : onResponseHead;
  return p;
}

// The parsers' callbacks: module functions shared by every connection, `this` the parser.

/** Part of a head that spans reads (or more than 32 fields): kept until the head is complete. */
function onHeaders(this: HttpParser, fields: string[], url: string): void {
  this[kExchange].partialHead(this, fields, url);
}

function onRequestHead(
  this: HttpParser,
  major: number,
  minor: number,
  fields: string[] | undefined,
  method: number,
  url: string | undefined,
  _status: number,
  _statusMessage: string,
  upgrade: boolean,
): number {
  this[kExchange].requestHead(major, minor, fields, methods[method] ?? '', url, upgrade);
  return 0;
}

function onResponseHead(
  this: HttpParser,
  _major: number,
  _minor: number,
  _fields: string[] | undefined,
  _method: number,
  _url: string | undefined,
  status: number,
  _statusMessage: string,
  upgrade: boolean,
): number {
  return this[kExchange].responseHead(status, upgrade);
}

function onBody(this: HttpParser, chunk: Buffer): void {
  this[kExchange].body(this, chunk.length);
}

function onMessageComplete(this: HttpParser): void {
  const x = this[kExchange];
  if (this === x.responseParser) x.responseComplete();
}

/** The client's side: requests parsed before they are passed on. */
class RequestTap implements RelayTap {
  holding = false;
  constructor(private readonly x: ObservedExchange) {}
  read(chunk: Buffer): boolean {
    return this.x.readRequests(chunk);
  }
  ended(): void {}
}

/** The pod's side: responses parsed as they pass. */
class ResponseTap implements RelayTap {
  readonly holding = false;
  constructor(private readonly x: ObservedExchange) {}
  read(chunk: Buffer): boolean {
    this.x.readResponses(chunk);
    return true;
  }
  ended(): void {
    this.x.podEnded();
  }
}

/** One observed connection: its two parsers and the requests awaiting their responses. */
class ObservedExchange {
  readonly requests = new RequestTap(this);
  readonly responses = new ResponseTap(this);
  readonly requestParser: HttpParser;
  readonly responseParser: HttpParser;
  /** requests read, oldest first, whose responses have not ended */
  private readonly awaiting: InboundRequest[] = [];
  /** requests are no longer read (an upgrade, a tunnel, the end of observation) */
  private requestsOpaque = false;
  /** responses are no longer read */
  private responsesOpaque = false;
  /** the response being read is a 1xx before the final one */
  private informational = false;
  /** a head that spans reads: its fields and target so far */
  private headFields: string[] = [];
  private headUrl = '';
  /** the pod's side ended or closed while requests were awaiting */
  private podGone = false;
  private closed = false;

  constructor(
    private readonly stream: Duplex,
    private readonly pod: Duplex,
    private readonly o: ObservedOptions,
  ) {
    this.requestParser = newParser(HTTPParser.REQUEST, this);
    this.responseParser = newParser(HTTPParser.RESPONSE, this);
  }

  readRequests(chunk: Buffer): boolean {
    if (this.requestsOpaque || this.closed) return true;
    const r = this.requestParser.execute(chunk);
    if (typeof r === 'number') return true;
    this.refuse(r);
    return false;
  }

  readResponses(chunk: Buffer): void {
    if (this.responsesOpaque || this.closed) return;
    const r = this.responseParser.execute(chunk);
    if (typeof r !== 'number') this.unreadable(r);
  }

  partialHead(p: HttpParser, fields: string[], url: string): void {
    if (p !== this.requestParser) return; // a response's fields are not read
    for (const f of fields) this.headFields.push(f);
    this.headUrl += url;
  }

  requestHead(major: number, minor: number, fields: string[] | undefined, method: string, url: string | undefined, upgrade: boolean): void {
    if (fields === undefined) {
      fields = this.headFields;
      this.headFields = [];
    }
    if (url === undefined) {
      url = this.headUrl;
      this.headUrl = '';
    }
    const headers = new RawHeaderFields(fields);
    const rec = new InboundRequest(
      this.o.telemetry,
      method,
      url,
      headers.get('host') ?? '',
      major === 1 && minor === 1 ? 'HTTP/1.1' : `HTTP/${major}.${minor}`,
      this.o.downstreamRemote,
      headers,
      true,
    );
    this.awaiting.push(rec);
    // what follows an Upgrade or CONNECT head is not HTTP/1.1
    if (upgrade) this.requestsOpaque = true;
    if (this.awaiting.length >= MAX_AWAITING) this.requests.holding = true;
  }

  responseHead(status: number, upgrade: boolean): number {
    const rec = this.awaiting[0];
    if (rec === undefined) {
      // a response to no request: the pod's bytes no longer line up with requests
      this.stopObserving();
      return 0;
    }
    if (status < 200 && status !== 101) {
      this.informational = true;
      return 0;
    }
    rec.responded(status);
    if (upgrade || (rec.method === 'CONNECT' && status >= 200 && status < 300)) {
      // the connection is a tunnel from here: the exchange that made it is counted at its answer
      this.awaiting.shift();
      this.report(rec);
      this.stopObserving();
      return TUNNEL;
    }
    return rec.method === 'HEAD' ? SKIP_BODY : 0;
  }

  body(p: HttpParser, bytes: number): void {
    if (p === this.requestParser) {
      const rec = this.awaiting[this.awaiting.length - 1];
      if (rec) rec.reqBytes += bytes;
    } else if (!this.informational) {
      const rec = this.awaiting[0];
      if (rec) rec.respBytes += bytes;
    }
  }

  responseComplete(): void {
    if (this.informational) {
      this.informational = false;
      return;
    }
    const rec = this.awaiting.shift();
    if (rec === undefined) return;
    this.report(rec);
    if (this.requests.holding && this.awaiting.length < MAX_AWAITING) {
      this.requests.holding = false;
      if (!this.pod.writableNeedDrain) this.stream.resume();
    }
  }

  /** The pod's side ended: a response read until close is complete now. */
  podEnded(): void {
    this.podGone = true;
    if (this.responsesOpaque || this.closed) return;
    const r = this.responseParser.finish();
    if (r !== undefined) this.unreadable(r);
  }

  podClosed(): void {
    this.podGone = true;
  }

  /** A request llhttp cannot read: not passed on; 400 when nothing is owed to the client, else a reset. */
  private refuse(err: Error & { code?: string }): void {
    log.debug({ code: err.code, reason: err.message }, 'observed request unreadable: refused');
    this.stopObserving();
    this.pod.destroy();
    if (this.awaiting.length === 0 && this.stream.writable)
      this.stream.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else this.stream.destroy();
  }

  /** A response llhttp cannot read: passed on, and the connection is observed no further. */
  private unreadable(err: Error & { code?: string }): void {
    log.debug({ code: err.code, reason: err.message }, 'observed response unreadable: no longer observed');
    for (const rec of this.awaiting.splice(0)) {
      rec.flags = withResponseFlag(rec.flags, ResponseFlag.UpstreamProtocolError);
      this.report(rec);
    }
    this.stopObserving();
  }

  private stopObserving(): void {
    this.requestsOpaque = true;
    this.responsesOpaque = true;
    if (this.requests.holding) {
      this.requests.holding = false;
      if (!this.pod.writableNeedDrain) this.stream.resume();
    }
  }

  private report(rec: InboundRequest): void {
    rec.end();
    requestDone(this.o.telemetry.labels(false), rec);
  }

  /** The client's side closed: what still awaits a response is reported, and the parsers go. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const flag = this.podGone ? ResponseFlag.UpstreamConnectionTermination : ResponseFlag.DownstreamConnectionTermination;
    for (const rec of this.awaiting.splice(0)) {
      rec.flags = withResponseFlag(rec.flags, flag);
      this.report(rec);
    }
    // not from inside a parser's callback (Node's own parsers are closed from setImmediate too)
    setImmediate(closeParsers, this.requestParser, this.responseParser);
  }
}

function closeParsers(a: HttpParser, b: HttpParser): void {
  a.close();
  b.close();
}
