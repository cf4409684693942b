// An agent authenticates to the control plane as its node: with the lab's credential
// directory (cert.pem + key.pem) or, on Kubernetes, with the kubelet's own client
// certificate file (certificate and key in one PEM, `CN=system:node:<node>`).
import test from 'ava';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readNodeCredential } from '../../control/api/control-credentials.js';
import { createNodeCa, issueNodeCredential } from '../../control/ca/node-credentials.js';

test('a node credential reads the same from a cert.pem/key.pem directory and from one kubelet-style PEM file', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nm-nodecred-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ca = await createNodeCa(path.join(dir, 'node-ca'));
  await issueNodeCredential(ca, 'node-a', path.join(dir, 'cred'));
  const fromDir = readNodeCredential(path.join(dir, 'cred'));

  const combined = path.join(dir, 'kubelet-client-current.pem');
  const cert = await readFile(path.join(dir, 'cred', 'cert.pem'), 'utf8');
  const key = await readFile(path.join(dir, 'cred', 'key.pem'), 'utf8');
  await writeFile(combined, cert + key);
  const fromFile = readNodeCredential(combined);

  t.is(new X509Certificate(fromFile.certificate).subject, new X509Certificate(fromDir.certificate).subject);
  t.regex(new X509Certificate(fromFile.certificate).subject, /CN=system:node:node-a/);
  t.deepEqual(
    createPrivateKey(fromFile.privateKey).export({ format: 'der', type: 'pkcs8' }),
    createPrivateKey(fromDir.privateKey).export({ format: 'der', type: 'pkcs8' }),
  );
});

test('a node credential file without a key is refused with what it must hold', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nm-nodecred-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ca = await createNodeCa(path.join(dir, 'node-ca'));
  await issueNodeCredential(ca, 'node-a', path.join(dir, 'cred'));
  const onlyCert = path.join(dir, 'only-cert.pem');
  await writeFile(onlyCert, await readFile(path.join(dir, 'cred', 'cert.pem')));
  t.throws(() => readNodeCredential(onlyCert), { message: /certificate and its private key/ });
});
