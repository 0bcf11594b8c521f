// The CA's certificates field by field, read back with Node's own X.509 parser (OpenSSL), not the
// library that wrote them, so a field the writer gets wrong cannot be read back "right".
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import type { PeerCertificate } from 'node:tls';
import { MeshError } from '../../../src/api/types.js';
import { x509 } from '../../../src/ca/peculiar.js';
import { parseSpiffe, peerServiceOf, spiffeId } from '../../../src/ca/spiffe.js';
import {
  createLeafKeyAndCsr,
  createRoot,
  crossSign,
  fingerprint,
  signLeaf,
  X509_LIMITS,
} from '../../../src/ca/x509.js';

const TD = '3f9c2a1e.mesh';
const NOW_MS = Date.UTC(2030, 0, 1, 12, 0, 0);
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

function meshError(code: string, pattern: RegExp) {
  return (err: unknown) => err instanceof MeshError && err.code === code && pattern.test(err.message);
}

function extension<T extends x509.Extension>(pem: string, type: new (raw: BufferSource) => T): T {
  const ext = new x509.X509Certificate(pem).getExtension(type as unknown as { new (): T });
  assert.ok(ext, `missing ${type.name}`);
  return ext;
}

describe('CA roots', () => {
  it('is a self-signed P-256 CA for the trust domain, backdated a minute', async () => {
    const root = await createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: 365 * DAY_MS });
    const cert = new X509Certificate(root.certPem);
    assert.equal(cert.ca, true);
    assert.ok(cert.checkIssued(cert) && cert.verify(cert.publicKey), 'self-signed');
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.match(cert.subject, /^CN=Mesh CA [0-9a-f]{8}\nO=3f9c2a1e\.mesh$/);
    assert.equal(cert.subjectAltName, `URI:spiffe://${TD}`);
    assert.equal(new Date(cert.validFrom).getTime(), NOW_MS - 60_000);
    assert.equal(root.notAfterMs, NOW_MS + 365 * DAY_MS);
    assert.equal(new Date(cert.validTo).getTime(), root.notAfterMs);
    assert.match(cert.serialNumber, /^[0-9A-F]{32}$/, '128-bit serial');
    assert.equal(root.id, createHash('sha256').update(cert.raw).digest('hex'));
    assert.equal(root.id, fingerprint(root.certPem));
    assert.match(root.keyPem, /^-----BEGIN PRIVATE KEY-----/);

    const basic = extension(root.certPem, x509.BasicConstraintsExtension);
    assert.deepEqual([basic.ca, basic.pathLength, basic.critical], [true, 1, true]);
    const usage = extension(root.certPem, x509.KeyUsagesExtension);
    assert.equal(usage.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    assert.equal(usage.critical, true);
    assert.match(extension(root.certPem, x509.SubjectKeyIdentifierExtension).keyId, /^[0-9a-f]{40}$/);
  });

  it('gives two roots different subjects and key ids', async () => {
    const a = await createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: DAY_MS });
    const b = await createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: DAY_MS });
    assert.notEqual(new X509Certificate(a.certPem).subject, new X509Certificate(b.certPem).subject);
    assert.notEqual(a.id, b.id);
    const named = await createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: DAY_MS, commonName: 'Acme' });
    assert.match(new X509Certificate(named.certPem).subject, /^CN=Acme\n/);
  });

  it('refuses a bad trust domain, a lifetime outside [1 min, 10 y], a bad common name', async () => {
    for (const trustDomain of ['', 'Mesh', 'a..b', '.mesh', 'a_b.mesh', 'x'.repeat(254)]) {
      await assert.rejects(
        createRoot({ trustDomain, nowMs: NOW_MS, ttlMs: DAY_MS }),
        meshError('bad_request', /Trust domain/),
      );
    }
    for (const ttlMs of [59_999, X509_LIMITS.ttlMsMax + 1, Number.NaN]) {
      await assert.rejects(
        createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs }),
        meshError('bad_request', /1 minute to 10 years/),
      );
    }
    await assert.rejects(
      createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: DAY_MS, commonName: 'x'.repeat(65) }),
      meshError('bad_request', /common name/),
    );
  });

  it('cross-signs the new root with the old key: same subject and key id, issued by the old root', async () => {
    const a = await createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: 30 * DAY_MS });
    const b = await createRoot({ trustDomain: TD, nowMs: NOW_MS + DAY_MS, ttlMs: 365 * DAY_MS });
    const crossPem = await crossSign({
      newRootCertPem: b.certPem,
      oldRootCertPem: a.certPem,
      oldRootKeyPem: a.keyPem,
      nowMs: NOW_MS + DAY_MS,
      ttlMs: 365 * DAY_MS,
    });
    const cross = new X509Certificate(crossPem);
    const certA = new X509Certificate(a.certPem);
    const certB = new X509Certificate(b.certPem);
    assert.equal(cross.subject, certB.subject);
    assert.equal(cross.issuer, certA.subject);
    assert.ok(cross.checkIssued(certA) && cross.verify(certA.publicKey), 'signed by the old root');
    assert.ok(cross.publicKey.equals(certB.publicKey), "the new root's key");
    assert.equal(cross.ca, true);
    assert.equal(cross.subjectAltName, `URI:spiffe://${TD}`);
    assert.equal(new Date(cross.validTo).getTime(), a.notAfterMs, "capped at the old root's expiry");
    assert.equal(extension(crossPem, x509.BasicConstraintsExtension).pathLength, 0);
    assert.equal(
      extension(crossPem, x509.SubjectKeyIdentifierExtension).keyId,
      extension(b.certPem, x509.SubjectKeyIdentifierExtension).keyId,
    );
    assert.equal(
      extension(crossPem, x509.AuthorityKeyIdentifierExtension).keyId,
      extension(a.certPem, x509.SubjectKeyIdentifierExtension).keyId,
    );
  });

  it('refuses to cross-sign with a key that is not the old root', async () => {
    const a = await createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: DAY_MS });
    const b = await createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: DAY_MS });
    const other = await createRoot({ trustDomain: 'other.mesh', nowMs: NOW_MS, ttlMs: DAY_MS });
    const base = { newRootCertPem: b.certPem, oldRootCertPem: a.certPem, nowMs: NOW_MS, ttlMs: DAY_MS };
    await assert.rejects(
      crossSign({ ...base, oldRootKeyPem: b.keyPem }),
      meshError('internal', /does not match/),
    );
    await assert.rejects(crossSign({ ...base, oldRootKeyPem: 'junk' }), meshError('internal', /PKCS#8/));
    await assert.rejects(
      crossSign({ ...base, newRootCertPem: other.certPem, oldRootKeyPem: a.keyPem }),
      meshError('bad_request', /trust domain/),
    );
  });
});

describe('CA leaves', () => {
  it('sets its own SANs, usages and key ids, whatever the CSR asked for', async () => {
    const root = await createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: 365 * DAY_MS });
    const { keyPem, csrPem } = await createLeafKeyAndCsr({ trustDomain: TD, service: 'web' });
    assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----/);
    const leaf = await signLeaf({
      csrPem,
      caCertPem: root.certPem,
      caKeyPem: root.keyPem,
      trustDomain: TD,
      service: 'api', // the CSR says web: the signer decides
      nowMs: NOW_MS,
      ttlMs: DAY_MS,
    });
    const cert = new X509Certificate(leaf.certPem);
    const ca = new X509Certificate(root.certPem);
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey));
    assert.equal(cert.ca, false);
    assert.equal(cert.subject, 'CN=api');
    assert.equal(cert.subjectAltName, `URI:spiffe://${TD}/svc/api, DNS:api.svc.${TD}`);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'EKU serverAuth, clientAuth');
    assert.equal(cert.checkHost(`api.svc.${TD}`), `api.svc.${TD}`);
    assert.equal(new Date(cert.validFrom).getTime(), NOW_MS - 60_000);
    assert.equal(leaf.notAfterMs, NOW_MS + DAY_MS);
    assert.equal(leaf.serial, cert.serialNumber.toLowerCase());
    const usage = extension(leaf.certPem, x509.KeyUsagesExtension);
    assert.deepEqual([usage.usages, usage.critical], [x509.KeyUsageFlags.digitalSignature, true]);
    const basic = extension(leaf.certPem, x509.BasicConstraintsExtension);
    assert.deepEqual([basic.ca, basic.critical], [false, true]);
    assert.equal(
      extension(leaf.certPem, x509.AuthorityKeyIdentifierExtension).keyId,
      extension(root.certPem, x509.SubjectKeyIdentifierExtension).keyId,
    );
    assert.match(extension(leaf.certPem, x509.SubjectKeyIdentifierExtension).keyId, /^[0-9a-f]{40}$/);
  });

  it('never outlives the CA, and refuses once the CA has expired', async () => {
    const root = await createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: HOUR_MS });
    const { csrPem } = await createLeafKeyAndCsr({ trustDomain: TD, service: 'web' });
    const base = { csrPem, caCertPem: root.certPem, caKeyPem: root.keyPem, trustDomain: TD, service: 'web' };
    const leaf = await signLeaf({ ...base, nowMs: NOW_MS + HOUR_MS / 2, ttlMs: DAY_MS });
    assert.equal(leaf.notAfterMs, root.notAfterMs);
    assert.equal(new Date(new X509Certificate(leaf.certPem).validTo).getTime(), root.notAfterMs);
    await assert.rejects(
      signLeaf({ ...base, nowMs: NOW_MS + HOUR_MS, ttlMs: DAY_MS }),
      meshError('internal', /expired.*mesh ca rotate/),
    );
  });

  it('refuses a tampered, oversized or non-P-256 CSR as a bad request', async () => {
    const root = await createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: DAY_MS });
    const { csrPem } = await createLeafKeyAndCsr({ trustDomain: TD, service: 'payments' });
    const der = Buffer.from(x509.PemConverter.decodeFirst(csrPem));
    const at = der.indexOf('payments');
    assert.ok(at > 0);
    der[at + 7] = 'z'.charCodeAt(0); // CN payments → paymentz: same length, broken signature
    const tampered = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
    const base = { caCertPem: root.certPem, caKeyPem: root.keyPem, trustDomain: TD, service: 'payments' };
    const sign = (pem: string) => signLeaf({ ...base, csrPem: pem, nowMs: NOW_MS, ttlMs: HOUR_MS });
    await assert.rejects(sign(tampered), meshError('bad_request', /invalid signature/));
    await assert.rejects(sign('not a csr'), meshError('bad_request', /not a readable/));
    await assert.rejects(sign(csrPem + ' '.repeat(8 * 1024)), meshError('bad_request', /8 KiB/));

    const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, [
      'sign',
      'verify',
    ]);
    const p384 = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=payments',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    await assert.rejects(sign(p384.toString('pem')), meshError('bad_request', /P-256/));
  });

  it('refuses bad names, a ttl out of bounds, and a CA key that is not the CA', async () => {
    const root = await createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: DAY_MS });
    const other = await createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: DAY_MS });
    const { csrPem } = await createLeafKeyAndCsr({ trustDomain: TD, service: 'web' });
    const base = { csrPem, caCertPem: root.certPem, caKeyPem: root.keyPem, trustDomain: TD, service: 'web' };
    const opts = { nowMs: NOW_MS, ttlMs: HOUR_MS };
    for (const service of ['Web', '-web', 'web-', 'a/b', 'x'.repeat(64), '']) {
      await assert.rejects(signLeaf({ ...base, ...opts, service }), meshError('bad_request', /Service name/));
    }
    await assert.rejects(
      signLeaf({ ...base, ...opts, trustDomain: 'A.mesh' }),
      meshError('bad_request', /Trust/),
    );
    await assert.rejects(
      signLeaf({ ...base, nowMs: NOW_MS, ttlMs: 1_000 }),
      meshError('bad_request', /1 minute/),
    );
    await assert.rejects(
      signLeaf({ ...base, ...opts, caKeyPem: other.keyPem }),
      meshError('internal', /not match/),
    );
    const leaf = await signLeaf({ ...base, ...opts });
    await assert.rejects(
      signLeaf({ ...base, ...opts, caCertPem: leaf.certPem }),
      meshError('internal', /not a CA/),
    );
  });
});

describe('SPIFFE identities', () => {
  it('round-trips service identities and rejects every other URI', () => {
    assert.equal(spiffeId(TD, 'web'), 'spiffe://3f9c2a1e.mesh/svc/web');
    assert.deepEqual(parseSpiffe(spiffeId(TD, 'web')), { trustDomain: TD, service: 'web' });
    for (const uri of [
      `spiffe://${TD}`,
      `spiffe://${TD}/`,
      `spiffe://${TD}/svc/web/extra`,
      `spiffe://${TD}/svc/Web`,
      `spiffe://${TD}/svc/-web`,
      `spiffe://${TD}/ns/default/sa/web`,
      'spiffe://UPPER.mesh/svc/web',
      `https://${TD}/svc/web`,
      `SPIFFE://${TD}/svc/web`,
      ` spiffe://${TD}/svc/web`,
    ]) {
      assert.equal(parseSpiffe(uri), undefined, uri);
    }
    assert.throws(() => spiffeId(TD, 'Bad'), meshError('bad_request', /Service name "Bad"/));
  });

  it('reads the peer identity from a certificate, and nothing from a root or a foreign cert', async () => {
    const root = await createRoot({ trustDomain: TD, nowMs: NOW_MS, ttlMs: DAY_MS });
    const { csrPem } = await createLeafKeyAndCsr({ trustDomain: TD, service: 'web' });
    const base = { caCertPem: root.certPem, caKeyPem: root.keyPem, trustDomain: TD };
    const leaf = await signLeaf({ ...base, csrPem, service: 'web', nowMs: NOW_MS, ttlMs: HOUR_MS });
    assert.deepEqual(peerServiceOf(new X509Certificate(leaf.certPem)), { trustDomain: TD, service: 'web' });
    assert.equal(peerServiceOf(new X509Certificate(root.certPem)), undefined);
    const peer = (subjectaltname?: string) => ({ subjectaltname }) as unknown as PeerCertificate;
    assert.deepEqual(peerServiceOf(peer(`DNS:x, URI:spiffe://${TD}/svc/db`)), {
      trustDomain: TD,
      service: 'db',
    });
    assert.equal(peerServiceOf(peer(`URI:spiffe://${TD}/svc/a, URI:spiffe://${TD}/svc/b`)), undefined);
    assert.equal(peerServiceOf(peer('URI:https://example.com/svc/web')), undefined);
    assert.equal(peerServiceOf(peer('DNS:web.svc.3f9c2a1e.mesh')), undefined);
    assert.equal(peerServiceOf(peer(undefined)), undefined);
    assert.equal(peerServiceOf({} as PeerCertificate), undefined, 'no client certificate');
  });
});
