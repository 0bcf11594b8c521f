// The certificate authority's X.509 operations: roots, cross-signed roots, leaf keys and CSRs, leaves.
// ECDSA P-256 with SHA-256 throughout: the cheapest signatures for handshakes that every TLS stack
// accepts. Time is an argument (`nowMs`) so the Raft state machine and tests decide what "now" is.
//
// HOW TO CONFIGURE node:tls (each point proven by test/unit/ca/tls.test.ts on Node 20's OpenSSL):
//   bundle = PEMs of the trusted roots: [active] normally, [old, new] during a rotation.
//   chain  = ONE string: leaf PEM + (during a rotation) the cross-signed root PEM, in that order.
//            Every PEM here ends with '\n', so plain `+` concatenates. Never `cert: [leaf, cross]`:
//            an array means one chain per key type and fails with "key values mismatch".
//   server: tls.createServer({ key: leafKey, cert: chain, ca: bundle, requestCert: true,
//           rejectUnauthorized: true, minVersion: 'TLSv1.3' }); in 'secureConnection' call
//           peerServiceOf(socket.getPeerCertificate()) and authorize that identity: Node checks only
//           the chain, never who the client is. A client that fails verification is destroyed with
//           no event and no reason; one without a certificate raises 'tlsClientError' ("peer did not
//           return a certificate"). To log why, set rejectUnauthorized: false and destroy any socket
//           whose `authorized` is false yourself, logging `authorizationError`.
//   client: tls.connect({ key: leafKey, cert: chain, ca: bundle, servername: `${svc}.svc.${td}`,
//           minVersion: 'TLSv1.3', checkServerIdentity: (_host, cert) => peerServiceOf(cert) is
//           { trustDomain: td, service: svc } ? undefined : new Error(...) }). Node calls it only after
//           the chain verified. In TLS 1.3 'secureConnect' fires before the server has judged the
//           client's certificate: a refused client sees only a hang-up / ECONNRESET at its first read.
//   `ca` replaces Node's public roots, so nothing but the mesh roots is trusted; order is irrelevant.
// ROTATION (A old, B new; crossSign(B by A) has B's subject and key id, issued by A):
//   1. Create B and cross(B). Push bundle [A, B] to every agent; keep issuing from A.
//   2. Issue from B; agents present chain leaf(B) + cross(B). A peer still trusting only [A] builds
//      leaf(B) → cross(B) → A from the chain the peer sent (both directions: client certs too).
//      Peers trusting [A, B] accept leaf(A) and leaf(B); OpenSSL tries the trust store first, so
//      leaf(B) ends at B itself and the cross cert is simply unused.
//   3. Once every leaf from A has expired (the leaf ttl after step 2), bundle [B], stop sending the
//      cross cert (sending it to a [B] peer is harmless). leaf(B) WITHOUT the cross cert is refused by
//      a peer trusting only [A] ("unable to get local issuer certificate").
//   Roots get distinct subjects (CN "Mesh CA <key id prefix>") and every child's AKI equals its
//   issuer's SKI. OpenSSL copes even with identical subjects (it matches AKI/SKI), other stacks and
//   operators reading `openssl x509 -text` need not.
import { createHash, X509Certificate as NodeX509 } from 'node:crypto';
import { MeshError } from '../api/types.js';
import { x509 } from './peculiar.js';
import { assertService, assertTrustDomain, serviceDnsName, spiffeId, trustDomainId } from './spiffe.js';
import {
  importCaKey,
  KEY_ALGORITHM,
  keyIdOf,
  parseCaCert,
  randomSerial,
  validity,
  verifiedCsr,
  withNewline,
  X509_LIMITS,
} from './x509-inputs.js';

export { X509_LIMITS } from './x509-inputs.js';

export interface CaRoot {
  /** Lowercase hex SHA-256 of the certificate's DER (`fingerprint(certPem)`): stable and unique. */
  id: string;
  certPem: string;
  /** PKCS#8 PEM ("PRIVATE KEY"). Lives only on Raft voters. */
  keyPem: string;
  notAfterMs: number;
}

export interface SignedLeaf {
  certPem: string;
  /** Exactly the certificate's notAfter (whole seconds); may be earlier than now + ttl (CA expiry). */
  notAfterMs: number;
  /** Lowercase hex, as in the certificate. */
  serial: string;
}

const SIGNING_ALGORITHM: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
/** A root may sign one intermediate (a cross-signed successor) above the leaves. */
const ROOT_PATH_LENGTH = 1;
/** A cross-signed root signs only leaves, so a chain can never grow by chained cross-signatures. */
const CROSS_PATH_LENGTH = 0;

/** Creates a cluster root: a fresh key and its self-signed certificate. */
export async function createRoot(opts: {
  trustDomain: string;
  nowMs: number;
  ttlMs: number;
  /** Defaults to `Mesh CA <first 8 hex of the key id>`: two roots then never share a subject. */
  commonName?: string;
}): Promise<CaRoot> {
  assertTrustDomain(opts.trustDomain);
  const { notBefore, notAfter } = validity(opts.nowMs, opts.ttlMs, Number.POSITIVE_INFINITY);
  if (opts.commonName !== undefined) {
    const cn = opts.commonName;
    if (cn.length === 0 || cn.length > X509_LIMITS.commonNameLengthMax || /\p{Cc}/u.test(cn)) {
      throw new MeshError('bad_request', 'The CA common name must be 1 to 64 printable characters.');
    }
  }
  const keys = await globalThis.crypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
  const ski = await x509.SubjectKeyIdentifierExtension.create(keys.publicKey);
  const commonName = opts.commonName ?? `Mesh CA ${ski.keyId.slice(0, 8)}`;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: [commonName] }, { O: [opts.trustDomain] }],
    keys,
    serialNumber: randomSerial(),
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, ROOT_PATH_LENGTH, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ski,
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(opts.trustDomain) }]),
    ],
  });
  const pkcs8 = await globalThis.crypto.subtle.exportKey('pkcs8', keys.privateKey);
  const certPem = withNewline(cert.toString('pem'));
  return {
    id: fingerprint(certPem),
    certPem,
    keyPem: withNewline(x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')),
    notAfterMs: cert.notAfter.getTime(),
  };
}

/**
 * The new root's subject and key, issued by the old root. A peer that trusts only the old root
 * verifies [leaf(new), crossSigned] through it; see the TLS notes at the top. Valid from now − 1 min
 * to now + ttl, capped at both roots' expiry (a bridge outliving either end is useless).
 */
export async function crossSign(opts: {
  newRootCertPem: string;
  oldRootCertPem: string;
  oldRootKeyPem: string;
  nowMs: number;
  ttlMs: number;
}): Promise<string> {
  const newRoot = parseCaCert(opts.newRootCertPem, 'new root');
  const oldRoot = parseCaCert(opts.oldRootCertPem, 'old root');
  const oldKey = await importCaKey(opts.oldRootKeyPem, oldRoot, 'old root');
  const newSan = newRoot.getExtension(x509.SubjectAlternativeNameExtension);
  const oldSan = oldRoot.getExtension(x509.SubjectAlternativeNameExtension);
  const newDomain = newSan?.names.items.find((n) => n.type === 'url')?.value;
  const oldDomain = oldSan?.names.items.find((n) => n.type === 'url')?.value;
  if (newSan === null || newDomain === undefined || newDomain !== oldDomain) {
    throw new MeshError(
      'bad_request',
      `The new root's trust domain (${newDomain ?? 'none'}) differs from the old root's ` +
        `(${oldDomain ?? 'none'}); a CA rotation keeps the trust domain.`,
    );
  }
  const capMs = Math.min(oldRoot.notAfter.getTime(), newRoot.notAfter.getTime());
  const { notBefore, notAfter } = validity(opts.nowMs, opts.ttlMs, capMs);
  const cert = await x509.X509CertificateGenerator.create({
    subject: newRoot.subjectName,
    issuer: oldRoot.subjectName,
    publicKey: newRoot.publicKey,
    signingKey: oldKey,
    serialNumber: randomSerial(),
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, CROSS_PATH_LENGTH, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      // The same key id as the new root, so OpenSSL sees both certificates as one issuer of the leaves.
      new x509.SubjectKeyIdentifierExtension(keyIdOf(newRoot)),
      new x509.AuthorityKeyIdentifierExtension(keyIdOf(oldRoot)),
      newSan,
    ],
  });
  return withNewline(cert.toString('pem'));
}

/** What an agent does for each local service: a fresh key that never leaves the host, and a CSR. */
export async function createLeafKeyAndCsr(opts: {
  trustDomain: string;
  service: string;
}): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await globalThis.crypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
  // The requested SANs are informational (the signer sets its own); they make the CSR self-describing
  // for an operator who inspects it with `openssl req -text`.
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [opts.service] }],
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        { type: 'url', value: spiffeId(opts.trustDomain, opts.service) },
        { type: 'dns', value: serviceDnsName(opts.trustDomain, opts.service) },
      ]),
    ],
  });
  const pkcs8 = await globalThis.crypto.subtle.exportKey('pkcs8', keys.privateKey);
  return {
    keyPem: withNewline(x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')),
    csrPem: withNewline(csr.toString('pem')),
  };
}

/**
 * Issues a leaf for `service` to the key in `csrPem`. Only the key comes from the CSR (after its
 * signature proves the requester holds it): subject, SANs and usages are the signer's, so a CSR cannot
 * ask for another identity. Valid from now − 1 min to now + ttl, but never past the CA's own expiry.
 */
export async function signLeaf(opts: {
  csrPem: string;
  caCertPem: string;
  caKeyPem: string;
  trustDomain: string;
  service: string;
  nowMs: number;
  ttlMs: number;
}): Promise<SignedLeaf> {
  assertTrustDomain(opts.trustDomain);
  assertService(opts.service);
  const csr = await verifiedCsr(opts.csrPem, opts.service);
  const ca = parseCaCert(opts.caCertPem, 'CA');
  const caKey = await importCaKey(opts.caKeyPem, ca, 'CA');
  const caNotAfterMs = ca.notAfter.getTime();
  if (caNotAfterMs <= opts.nowMs) {
    throw new MeshError(
      'internal',
      `The CA certificate expired at ${ca.notAfter.toISOString()}; rotate the CA (mesh ca rotate).`,
    );
  }
  const { notBefore, notAfter } = validity(opts.nowMs, opts.ttlMs, caNotAfterMs);
  const cert = await x509.X509CertificateGenerator.create({
    subject: [{ CN: [opts.service] }],
    issuer: ca.subjectName,
    publicKey: csr.publicKey,
    signingKey: caKey,
    serialNumber: randomSerial(),
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
      new x509.AuthorityKeyIdentifierExtension(keyIdOf(ca)),
      new x509.SubjectAlternativeNameExtension([
        { type: 'url', value: spiffeId(opts.trustDomain, opts.service) },
        { type: 'dns', value: serviceDnsName(opts.trustDomain, opts.service) },
      ]),
    ],
  });
  return {
    certPem: withNewline(cert.toString('pem')),
    notAfterMs: cert.notAfter.getTime(),
    serial: cert.serialNumber,
  };
}

/** Lowercase hex SHA-256 of the (first) certificate's DER: what `openssl x509 -fingerprint -sha256` shows. */
export function fingerprint(certPem: string): string {
  let der: Buffer;
  try {
    der = new NodeX509(certPem).raw;
  } catch {
    throw new MeshError('bad_request', 'Cannot compute a fingerprint: the input is not a PEM certificate.');
  }
  return createHash('sha256').update(der).digest('hex');
}
