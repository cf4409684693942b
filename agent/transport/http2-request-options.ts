// Options for `ClientHttp2Session.request` with Node's priority defaults already in them.
// Node 20's request copies the options it is given and then stores weight, parent, exclusive
// and silent into the copy when they are missing; those stores missed V8's inline caches on
// every request: ~4 % of an agent's CPU under h2 load (test/bench/profile.ts, nm-l7 --proto
// h2). Given them, with the values Node would have filled in (nghttp2's default weight 16, the
// root as parent, not exclusive, not silent), it only checks them: the stream is the same.
// The objects are shared and Node never writes to them (it writes to its copy); a caller must
// not either.
import http2 from 'node:http2';

type RequestOptions = Readonly<http2.ClientSessionRequestOptions & { silent: boolean }>;

const PRIORITY = { weight: http2.constants.NGHTTP2_DEFAULT_WEIGHT, parent: 0, exclusive: false, silent: false } as const;

const ENDED: RequestOptions = { endStream: true, ...PRIORITY };
const OPEN: RequestOptions = { endStream: false, ...PRIORITY };
const OPEN_WITH_TRAILERS: RequestOptions = { endStream: false, waitForTrailers: true, ...PRIORITY };

/** A request with no body (`endStream`), or one whose body follows (and its trailers, if asked). */
export function h2RequestOptions(endStream: boolean, waitForTrailers = false): RequestOptions {
  return endStream ? ENDED : waitForTrailers ? OPEN_WITH_TRAILERS : OPEN;
}
