// The CA on its own (control/ca.ts): what an issued X.509-SVID looks like to openssl, the
// root generated once and kept with mode 0600, requests it refuses, an operator-supplied
// intermediate, and root rotation (both roots trusted during the overlap, new leaves under
// the new root, old leaves verifying until the overlap ends) with a fake clock.
import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLocalCa, type LocalCa } from '../../control/ca/ca.js';
import { CaStore } from '../../control/ca/store.js';
import { splitPemCertificates, svidSpiffeId, verifyChain } from '../../control/api/x509-svid.js';
import { requestRotation } from '../../cli/ca.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { eventually } from '../helpers/eventually.js';
import { run } from '../helpers/privileged.js';
import { csr } from '../helpers/csr.js';

const TD = 'cluster.local';
const ID = `spiffe://${TD}/ns/shop/sa/web`;

const dirs: string[] = [];
const cas: LocalCa[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'nm-ca-test-'));
  dirs.push(d);
  return d;
}
async function ca(opts: Partial<Parameters<typeof startLocalCa>[0]> = {}): Promise<LocalCa> {
  const c = await startLocalCa({ dir: opts.dir ?? path.join(await tempDir(), 'ca'), trustDomain: TD, rotationPollMs: 0, ...opts });
  cas.push(c);
  return c;
}
test.after.always(async () => {
  for (const c of cas) c.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function openssl(args: string[]): Promise<string> {
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function pemFile(dir: string, name: string, pem: string | string[]): Promise<string> {
  const f = path.join(dir, name);
  await writeFile(f, Array.isArray(pem) ? pem.join('') : pem);
  return f;
}

test('openssl shows an issued SVID with exactly the one SPIFFE URI SAN, the validity asked for, and the SVID extensions', async (t) => {
  const c = await ca();
  const asked = Date.now();
  const chain = c.signWorkload({ csrPem: csr([ID]), spiffeId: ID, ttlSeconds: 3600 });
  const answered = Date.now();
  const dir = await tempDir();
  const leafFile = await pemFile(dir, 'leaf.pem', chain[0]!);
  const text = await openssl(['x509', '-in', leafFile, '-text', '-noout']);

  const uris = text.match(/URI:[^\s,]+/g) ?? [];
  t.deepEqual(uris, [`URI:${ID}`], 'exactly one URI SAN, the SPIFFE ID');
  t.regex(text, /X509v3 Subject Alternative Name: critical/, 'the subject is empty, so the SAN extension is critical');
  t.regex(text, /Subject: *\n/, 'empty subject');
  t.regex(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
  t.regex(text, /X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
  t.regex(text, /X509v3 Extended Key Usage: *\n\s+TLS Web Server Authentication, TLS Web Client Authentication/);

  const notAfter = Date.parse(/Not After : (.+)/.exec(text)![1]!);
  const notBefore = Date.parse(/Not Before: (.+)/.exec(text)![1]!);
  // one hour after the moment of signing, which lies between the request and the answer
  // (X.509 times have whole seconds)
  t.true(
    notAfter >= asked + 3600_000 - 1000 && notAfter <= answered + 3600_000 + 1000,
    `notAfter ${new Date(notAfter).toISOString()} is one hour after the request (${new Date(asked).toISOString()}–${new Date(answered).toISOString()})`,
  );
  t.true(notBefore <= asked, 'valid from before the request (backdated for clock skew)');

  // and it verifies against the root, as an SSL client and server certificate
  const rootFile = await pemFile(dir, 'root.pem', c.trustBundle());
  for (const purpose of ['sslclient', 'sslserver']) {
    t.regex(await openssl(['verify', '-purpose', purpose, '-CAfile', rootFile, leafFile]), /: OK/);
  }
  t.is(svidSpiffeId(chain[0]!), ID);
  t.is(chain.length, 2, 'leaf and root');
  t.is(chain[1]!.trim(), c.trustBundle()[0]!.trim());
});

test('the serial is random and the default validity is 24 h; more than the maximum is refused', async (t) => {
  const c = await ca();
  const asked = Date.now();
  const a = new X509Certificate(c.signWorkload({ csrPem: csr([ID]), spiffeId: ID })[0]!);
  const answered = Date.now();
  const b = new X509Certificate(c.signWorkload({ csrPem: csr([ID]), spiffeId: ID })[0]!);
  t.not(a.serialNumber, b.serialNumber);
  t.true(a.serialNumber.length >= 30, `a 16-byte serial, got ${a.serialNumber}`);
  // 24 h from when it was signed (X.509 times are whole seconds)
  const validTo = Date.parse(a.validTo);
  t.true(validTo >= asked + 24 * 3600_000 - 1000 && validTo <= answered + 24 * 3600_000, `valid to ${a.validTo}`);
  const err = t.throws(() => c.signWorkload({ csrPem: csr([ID]), spiffeId: ID, ttlSeconds: 25 * 3600 }));
  t.regex(err!.message, /exceeds the CA's maximum of 86400 s/);
});

test('the root is generated on first start, kept with mode 0600 in a 0700 dir, and reused on restart', async (t) => {
  const dir = path.join(await tempDir(), 'ca');
  const first = await ca({ dir });
  const store = new CaStore(dir);
  t.is((await stat(dir)).mode & 0o777, 0o700);
  t.is((await stat(store.file('rootKey'))).mode & 0o777, 0o600);
  t.is((await stat(store.file('rootCert'))).mode & 0o777, 0o600);
  const root = first.trustBundle()[0]!;
  t.is((await readFile(store.file('trustBundle'), 'utf8')).trim(), root.trim(), 'the public bundle file holds the root');
  const rootText = await openssl(['x509', '-in', store.file('rootCert'), '-text', '-noout']);
  t.regex(rootText, /CA:TRUE/);
  t.regex(rootText, /Certificate Sign, CRL Sign/);
  t.regex(rootText, /URI:spiffe:\/\/cluster\.local\n/, 'the signing certificate is an SVID of the trust domain (no path)');
  first.close();

  const again = await ca({ dir });
  t.is(again.trustBundle()[0], root, 'same root after a restart');
  const chain = again.signWorkload({ csrPem: csr([ID]), spiffeId: ID });
  t.is(verifyChain(chain, [root], Date.now()), root);
});

test('a request is refused when the CSR asks for another identity, is not signed by its key, or the identity is not a workload SPIFFE ID of this trust domain', async (t) => {
  const c = await ca();
  t.regex(t.throws(() => c.signWorkload({ csrPem: csr(['spiffe://cluster.local/ns/shop/sa/admin']), spiffeId: ID }))!.message, /CSR asks for URI SAN .*admin but the request is for .*web/);
  t.regex(t.throws(() => c.signWorkload({ csrPem: csr([ID, 'spiffe://cluster.local/ns/x/sa/y']), spiffeId: ID }))!.message, /must agree/);
  t.regex(t.throws(() => c.signWorkload({ csrPem: csr([ID]), spiffeId: 'spiffe://other.domain/ns/shop/sa/web' }))!.message, /trust domain is other\.domain/);
  t.regex(t.throws(() => c.signWorkload({ csrPem: csr([ID]), spiffeId: 'spiffe://cluster.local/web' }))!.message, /\/ns\/<namespace>\/sa\/<service account>/);
  t.regex(t.throws(() => c.signWorkload({ csrPem: 'not a csr', spiffeId: ID }))!.message, /CSR cannot be read/);
  // a CSR whose signature does not match its content: flip a bit of the signature
  const der = Buffer.from(csr([ID]).replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, ''), 'base64');
  der[der.length - 1]! ^= 0x01;
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;
  t.regex(t.throws(() => c.signWorkload({ csrPem: tampered, spiffeId: ID }))!.message, /signature does not verify/);
  // no URI SAN in the CSR: the identity asked for is used
  t.is(svidSpiffeId(c.signWorkload({ csrPem: csr([]), spiffeId: ID })[0]!), ID);
});

test('an operator-supplied intermediate signs, and the chain is served leaf → intermediate → root', async (t) => {
  const dir = await tempDir();
  const f = (n: string) => path.join(dir, n);
  await writeFile(f('ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('root.key'), '-out', f('root.pem'), '-subj', '/O=operator/CN=operator root', '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('int.key'), '-out', f('int.csr'), '-subj', '/O=operator/CN=operator intermediate']);
  await openssl(['x509', '-req', '-in', f('int.csr'), '-CA', f('root.pem'), '-CAkey', f('root.key'), '-CAcreateserial', '-out', f('int.pem'), '-days', '30', '-extfile', f('ca.ext')]);

  const c = await ca({ operator: { certFile: f('int.pem'), keyFile: f('int.key'), chainFile: f('root.pem') } });
  const root = await readFile(f('root.pem'), 'utf8');
  t.deepEqual(c.trustBundle().map((r) => r.trim()), [root.trim()], 'the bundle is the operator root');
  const chain = c.signWorkload({ csrPem: csr([ID]), spiffeId: ID });
  t.is(chain.length, 3);
  t.is(chain[1]!.trim(), (await readFile(f('int.pem'), 'utf8')).trim());
  t.is(chain[2]!.trim(), root.trim());
  const leaf = await pemFile(dir, 'leaf.pem', chain[0]!);
  t.regex(await openssl(['verify', '-CAfile', f('root.pem'), '-untrusted', f('int.pem'), leaf]), /: OK/);
  await t.throwsAsync(c.rotate(), { message: /operator-supplied/ });

  // a key that is not the certificate's is refused at start, naming the problem
  await t.throwsAsync(ca({ operator: { certFile: f('int.pem'), keyFile: f('root.key'), chainFile: f('root.pem') } }), { message: /private key does not belong to the certificate/ });
  await t.throwsAsync(ca({ operator: { certFile: f('int.pem'), keyFile: f('int.key') } }), { message: /does not end at a self-signed root/ });
});

test('root rotation: both roots in the bundle during the overlap, new leaves under the new root, old leaves verify until the overlap ends', async (t) => {
  const clock = new FakeClock();
  const dir = path.join(await tempDir(), 'ca');
  const c = await ca({ dir, clock, workloadTtlMs: 4 * 3600_000 });
  const oldRoot = c.trustBundle()[0]!;
  const oldLeaf = c.signWorkload({ csrPem: csr([ID]), spiffeId: ID });
  let changes = 0;
  c.onChange(() => changes++);

  clock.advance(3600_000);
  const rotation = await c.rotate({ overlapMs: 2 * 3600_000 });
  t.is(changes, 1);
  const bundle = c.trustBundle();
  t.is(bundle.length, 2);
  t.is(bundle[0], oldRoot, 'the old root stays, first');
  const newRoot = bundle[1]!;
  t.not(newRoot, oldRoot);
  t.is((await readFile(new CaStore(dir).file('trustBundle'), 'utf8')).trim(), bundle.join('').trim(), 'the bundle file has both');

  const newLeaf = c.signWorkload({ csrPem: csr([ID]), spiffeId: ID });
  t.is(verifyChain(newLeaf, bundle, clock.now()), newRoot, 'new leaves chain to the new root');
  t.is(verifyChain(oldLeaf, bundle, clock.now()), oldRoot, 'old leaves still verify during the overlap');
  const tmp = await tempDir();
  const bundleFile = await pemFile(tmp, 'bundle.pem', bundle);
  for (const leaf of [oldLeaf, newLeaf]) t.regex(await openssl(['verify', '-attime', String(Math.floor(clock.now() / 1000)), '-CAfile', bundleFile, await pemFile(tmp, 'l.pem', leaf[0]!)]), /: OK/);
  await t.throwsAsync(c.rotate(), { message: /in its overlap/ }, 'one rotation at a time');

  // a restart during the overlap still trusts both
  const restarted = await ca({ dir, clock });
  t.deepEqual(restarted.trustBundle(), bundle);
  restarted.close();

  clock.advanceTo(Date.parse(rotation.retireAt));
  // the retire step writes its files, then announces the change
  await eventually(() => changes === 2, 20_000, 'the end of the overlap to be announced');
  t.deepEqual(c.trustBundle(), [newRoot], 'the old root is dropped after the overlap');
  t.throws(() => verifyChain(oldLeaf, c.trustBundle(), clock.now()), { message: /does not lead to a root/ });
  t.is((await readFile(new CaStore(dir).file('trustBundle'), 'utf8')).trim(), newRoot.trim());
  const after = await ca({ dir, clock });
  t.deepEqual(after.trustBundle(), [newRoot], 'and stays dropped after a restart');
});

test('`nodemesh ca rotate` drops a request in the CA dir; the CA applies it and answers', async (t) => {
  const dir = path.join(await tempDir(), 'ca');
  const c = await ca({ dir, rotationPollMs: 20 });
  const before = c.trustBundle();
  const res = await requestRotation(dir, { overlapSeconds: 600, timeoutMs: 60_000 });
  t.true(res.ok, res.error);
  t.is(c.trustBundle().length, 2);
  t.is(c.trustBundle()[0], before[0]);
  t.is(Date.parse(res.rotation!.retireAt) - Date.parse(res.rotation!.rotatedAt), 600_000);
  const second = await requestRotation(dir, { timeoutMs: 60_000 });
  t.false(second.ok);
  t.regex(second.error!, /in its overlap/);
  t.is(splitPemCertificates(await readFile(new CaStore(dir).file('trustBundle'), 'utf8')).length, 2);
});
