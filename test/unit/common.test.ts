// The project-wide pieces in common/: host:port addresses (Go's grammar), exponential
// backoff with full and equal jitter, IPv4 arithmetic.
import test from 'ava';
import { backoffCeiling, equalJitterBackoff, fullJitterBackoff } from '../../common/backoff.js';
import { joinHostPort, parseHostPort, splitHostPort } from '../../common/host-port.js';
import { intToIpv4, ipv4ToInt, readIpv4, writeIpv4 } from '../../common/ip.js';

test('host:port: a name or IPv4, a bracketed IPv6, or only the port; anything else is refused', (t) => {
  t.deepEqual(parseHostPort('10.0.0.1:15020'), { host: '10.0.0.1', port: 15020, bracketed: false });
  t.deepEqual(parseHostPort('control.nodemesh:15012'), { host: 'control.nodemesh', port: 15012, bracketed: false });
  t.deepEqual(parseHostPort('[fd00::1]:15008'), { host: 'fd00::1', port: 15008, bracketed: true });
  t.deepEqual(parseHostPort(':15014'), { host: '', port: 15014, bracketed: false });
  t.deepEqual(parseHostPort('0.0.0.0:0'), { host: '0.0.0.0', port: 0, bracketed: false });
  for (const bad of ['10.0.0.1', 'fd00::1:15008', '10.0.0.1:', '10.0.0.1:65536', '10.0.0.1:http', '[fd00::1]', 'a:b:1'])
    t.is(parseHostPort(bad), undefined, bad);
  t.deepEqual(splitHostPort('127.0.0.1:15020'), ['127.0.0.1', 15020]);
  t.throws(() => splitHostPort('15020'), { message: /expected host:port.*got "15020"/ });
  t.is(joinHostPort('10.0.0.1', 80), '10.0.0.1:80');
  t.is(joinHostPort('fd00::1', 80), '[fd00::1]:80');
});

test('backoff: the ceiling doubles from the base up to the max; full jitter below it, equal jitter in its upper half', (t) => {
  const b = { baseMs: 25, maxMs: 250 };
  t.deepEqual(
    [0, 1, 2, 3, 4, 100].map((a) => backoffCeiling(b, a)),
    [25, 50, 100, 200, 250, 250],
  );
  t.is(
    fullJitterBackoff(b, 2, () => 0),
    0,
  );
  t.is(
    fullJitterBackoff(b, 2, () => 0.5),
    50,
  );
  t.is(
    equalJitterBackoff(b, 2, () => 0),
    50,
  );
  t.is(
    equalJitterBackoff(b, 2, () => 0.5),
    75,
  );
  t.is(backoffCeiling({ baseMs: 0, maxMs: 1000 }, 5000), 0, 'a zero base stays zero, however many attempts');
});

test('IPv4: dotted quads to bytes and numbers and back', (t) => {
  const b = Buffer.alloc(6);
  t.true(writeIpv4(b, 1, '10.244.1.3'));
  t.is(b.toString('hex'), '000af4010300');
  t.is(readIpv4(b, 1), '10.244.1.3');
  t.false(writeIpv4(b, 0, '10.244.1'));
  t.false(writeIpv4(b, 0, 'fd00::1'));
  t.is(ipv4ToInt('10.96.0.10'), 0x0a60000a);
  t.is(ipv4ToInt('255.255.255.255'), 0xffffffff);
  t.is(ipv4ToInt('10.96.0'), undefined);
  t.is(intToIpv4(0x0a60000a), '10.96.0.10');
  t.is(intToIpv4(0xffffffff), '255.255.255.255');
});
