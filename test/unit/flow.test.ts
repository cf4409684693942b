// One connection's Istio TCP accounting (agent/transport/flow.ts), on real sockets and on a
// stream without byte counters: opened and closed once each, bytes in the request and the
// response direction counted once (also bytes a protocol sniff read and gave back),
// refusals opened and closed with their flag, long-lived flows visible before they close.
import test, { type ExecutionContext } from 'ava';
import { tcpLabels } from '../../agent/telemetry/metrics.js';
import { Flow, FlowSet, trackUntilClose } from '../../agent/transport/flow.js';
import { duplexPair } from '../../agent/transport/duplex-pair.js';
import { sniff } from '../../agent/transport/protocol-detect.js';
import { eventually } from '../helpers/eventually.js';
import { metricValue } from '../helpers/metrics.js';
import { socketPair } from '../helpers/socket-pair.js';

let n = 0;
/** Labels of a series of its own: destination_service is unique per test. */
function labels() {
  return tcpLabels(undefined, undefined, undefined, `flow-test-${n++}:80`, '-');
}

/** A FlowSet (flushing every `flushIntervalMs`, if given) closed with the test. */
function flowSet(t: ExecutionContext, flushIntervalMs?: number): FlowSet {
  const set = new FlowSet(flushIntervalMs);
  t.teardown(() => set.close());
  return set;
}

const metric = (name: string, destination: string, flags = '-') =>
  metricValue(name, { destination_service: destination, response_flags: flags });

test("a client's socket: what it read is received, what it wrote is sent; opened and closed once", async (t) => {
  const p = await socketPair(t);
  const set = flowSet(t);
  const l = labels();
  const flow = new Flow(set, l, p.server, 'client');
  flow.open();
  flow.open();
  t.is(set.size, 1);
  p.client.write('hello');
  p.server.once('data', () => p.server.write('hello, world'));
  await eventually(() => p.client.bytesRead === 12, 20_000, 'the answer');
  flow.close();
  flow.close();
  t.is(set.size, 0);
  const d = l.destination_service;
  t.is(await metric('istio_tcp_connections_opened_total', d), 1);
  t.is(await metric('istio_tcp_connections_closed_total', d), 1);
  t.is(await metric('istio_tcp_received_bytes_total', d), 5);
  t.is(await metric('istio_tcp_sent_bytes_total', d), 12);
});

test("an open flow's bytes show at a scrape, before it closes, and are not counted again", async (t) => {
  const p = await socketPair(t);
  const set = flowSet(t, 0);
  const l = labels();
  const flow = new Flow(set, l, p.server, 'client');
  flow.open();
  p.client.write('0123456789');
  await eventually(() => flow.receivedBytes === 10, 20_000, 'the bytes');
  t.is(await metric('istio_tcp_received_bytes_total', l.destination_service), 10);
  p.client.write('ab');
  await eventually(() => flow.receivedBytes === 12, 20_000, 'more bytes');
  flow.close();
  t.is(await metric('istio_tcp_received_bytes_total', l.destination_service), 12);
});

test('a refused connection is opened and closed with its flag', async (t) => {
  const [a] = duplexPair();
  const set = flowSet(t);
  const l = labels();
  new Flow(set, l, a, 'passing').close('DENY');
  t.is(await metric('istio_tcp_connections_opened_total', l.destination_service, 'DENY'), 1);
  t.is(await metric('istio_tcp_connections_closed_total', l.destination_service, 'DENY'), 1);
  t.is(await metric('istio_tcp_connections_opened_total', l.destination_service), 0);
});

test('a stream without counters: the flow counts what passes, once, also the bytes a sniff gave back', async (t) => {
  const [a, b] = duplexPair();
  const set = flowSet(t);
  const l = labels();
  const flow = new Flow(set, l, a, 'passing');
  flow.open();
  const sniffed = sniff(a, 0);
  b.write('GET / HTTP/1.1\r\n\r\n');
  t.is(await sniffed, 'http1');
  let read = '';
  a.on('data', (d: Buffer) => (read += d.toString()));
  a.resume();
  await eventually(() => read.length === 18, 20_000, 'the request to be read');
  a.write('HTTP/1.1 200 OK\r\n\r\n');
  t.is(flow.receivedBytes, 18);
  t.is(flow.sentBytes, 19);
  flow.close();
  t.is(await metric('istio_tcp_received_bytes_total', l.destination_service), 18);
  t.is(await metric('istio_tcp_sent_bytes_total', l.destination_service), 19);
});

test('an upstream connection: what the proxy wrote was received from the client, what it read is sent back; it closes with the stream', async (t) => {
  const p = await socketPair(t);
  const set = flowSet(t);
  const l = labels();
  trackUntilClose(set, p.client, l, 'upstream');
  p.client.resume();
  p.client.write('request');
  p.server.once('data', () => p.server.end('response!'));
  await eventually(() => p.client.bytesRead === 9, 20_000, 'the response');
  p.client.end();
  await eventually(() => set.size === 0, 20_000, 'the close');
  t.is(await metric('istio_tcp_received_bytes_total', l.destination_service), 7);
  t.is(await metric('istio_tcp_sent_bytes_total', l.destination_service), 9);
  t.is(await metric('istio_tcp_connections_closed_total', l.destination_service), 1);
});
