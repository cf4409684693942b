// Node 20's `AsyncResource.prototype.bind` gives every function it binds an `asyncResource`
// accessor made of two fresh `util.deprecate` wrappers (DEP0172), and `deprecate` changes each
// wrapper's prototype: a prototype transition in V8 per wrapper. `ClientHttp2Session.request`
// binds one function per stream, so every HTTP/2 request the agent sends upstream (the L7
// engine's h2 and gRPC pools, the destination's h2 to its pod) and every HBONE CONNECT paid it:
// ~5 % of an agent's CPU under h2 load (test/bench/profile.ts, nm-l7 --proto h2). Node itself
// stopped changing the wrappers' prototype (nodejs/node#59195) and then removed the property
// (DEP0172 End-of-Life, nodejs/node#58618).
//
// So, on a Node that still adds the property, `bind` is replaced by the End-of-Life form:
// the same bound function (same async scope, same `this`, same arguments, same `length`),
// without the deprecated property. Nothing in the agent or its dependencies reads it. On a
// Node that no longer adds it, nothing is replaced. Installed when this module is first
// imported, by the modules that open HTTP/2 streams (hbone/client.ts, cluster/pools.ts,
// proxy/inbound-http.ts); process-wide by nature, as the methods it replaces are.
import { AsyncResource } from 'node:async_hooks';

type Bind = (this: AsyncResource, fn: (...args: unknown[]) => unknown, thisArg?: unknown) => (...args: unknown[]) => unknown;

/** Whether `bind` was replaced here (false on a Node that no longer needs it). */
export const asyncBindFix = { installed: false };

function addsDeprecatedProperty(): boolean {
  const probe = new AsyncResource('nodemesh.async-bind-probe');
  const bound = probe.bind(() => {});
  probe.emitDestroy();
  return Object.prototype.hasOwnProperty.call(bound, 'asyncResource');
}

function install(): void {
  if (!addsDeprecatedProperty()) return;
  const bind: Bind = function (fn, thisArg) {
    if (typeof fn !== 'function') {
      const err = new TypeError(`The "fn" argument must be of type function. Received ${fn === null ? 'null' : typeof fn}`);
      (err as NodeJS.ErrnoException).code = 'ERR_INVALID_ARG_TYPE';
      throw err;
    }
    let bound: (...args: unknown[]) => unknown;
    if (thisArg === undefined) {
      const resource = this;
      bound = function (this: unknown, ...args: unknown[]) {
        return resource.runInAsyncScope(fn, this, ...args);
      };
    } else {
      bound = this.runInAsyncScope.bind(this, fn, thisArg) as (...args: unknown[]) => unknown;
    }
    Object.defineProperty(bound, 'length', { configurable: true, enumerable: false, value: fn.length, writable: false });
    return bound;
  };
  Object.defineProperty(AsyncResource.prototype, 'bind', { configurable: true, enumerable: false, writable: true, value: bind });
  asyncBindFix.installed = true;
}

install();
