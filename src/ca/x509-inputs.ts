// What the CA signs with, checked before it signs: lifetimes, CSRs, CA certificates and keys. Every
// check throws a MeshError an operator can act on; the signing itself is in x509.ts.
import { createPublicKey } from 'node:crypto';
import { MeshError } from '../api/types.js';
import { x509 } from './peculiar.js';

export const X509_LIMITS = Object.freeze({
  /** A P-256 CSR is ~500 bytes of PEM; 8 KiB leaves room for a few requested extensions, no more. */
  csrPemBytesMax: 8 * 1024,
  /** Below a minute a certificate would expire before it could be delivered and used. */
  ttlMsMin: 60_000,
  /** Ten years: a root's lifetime. Longer is a typo, and X.509 dates beyond 2049 need care anyway. */
  ttlMsMax: 10 * 365 * 24 * 3_600_000,
  /** Certificates start this long before "now", so a peer whose clock is a little behind accepts them. */
  backdateMs: 60_000,
  /** X.520's upper bound for a common name. */
  commonNameLengthMax: 64,
});

export const KEY_ALGORITHM: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };

/** [now − backdate, min(now + ttl, cap)], in whole seconds because X.509 stores no milliseconds. */
export function validity(nowMs: number, ttlMs: number, capMs: number): { notBefore: Date; notAfter: Date } {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0) {
    throw new MeshError('internal', `The current time ${nowMs} is not a valid epoch milliseconds value.`);
  }
  if (!Number.isFinite(ttlMs) || ttlMs < X509_LIMITS.ttlMsMin || ttlMs > X509_LIMITS.ttlMsMax) {
    throw new MeshError(
      'bad_request',
      `A certificate lifetime of ${ttlMs} ms is outside the allowed range of 1 minute to 10 years.`,
    );
  }
  const notBeforeMs = floorToSecond(nowMs - X509_LIMITS.backdateMs);
  const notAfterMs = floorToSecond(Math.min(nowMs + ttlMs, capMs));
  return { notBefore: new Date(notBeforeMs), notAfter: new Date(notAfterMs) };
}

/** PEM files end with a newline; without it `leaf + cross` would glue two PEM lines together and
 * OpenSSL would reject the chain ("bad end line"). */
export function withNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

function floorToSecond(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

/** 128 random bits, top bit cleared so the DER integer is positive and exactly 16 bytes (RFC 5280). */
export function randomSerial(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}

export function parseCaCert(pem: string, role: string): x509.X509Certificate {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(pem);
  } catch {
    throw new MeshError('internal', `The ${role} certificate is not a readable PEM certificate.`);
  }
  if (cert.getExtension(x509.BasicConstraintsExtension)?.ca !== true) {
    throw new MeshError('internal', `The ${role} certificate (${cert.subject}) is not a CA certificate.`);
  }
  return cert;
}

/** The issuer's own SKI, so the child's AKI matches it byte for byte (OpenSSL compares the two). */
export function keyIdOf(cert: x509.X509Certificate): string {
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski === null) {
    throw new MeshError('internal', `The CA certificate (${cert.subject}) has no subject key identifier.`);
  }
  return ski.keyId;
}

/** Imports a PKCS#8 P-256 key for signing, after checking it belongs to `cert`: a mismatched pair
 * would issue certificates that fail every handshake with an unhelpful "bad signature". */
export async function importCaKey(
  keyPem: string,
  cert: x509.X509Certificate,
  role: string,
): Promise<CryptoKey> {
  const bad = () => new MeshError('internal', `The ${role} private key is not a PKCS#8 ECDSA P-256 key.`);
  let spki: Buffer;
  let key: CryptoKey;
  try {
    spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
    const der = x509.PemConverter.decodeFirst(keyPem);
    key = await globalThis.crypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, false, ['sign']);
  } catch {
    throw bad();
  }
  if (!spki.equals(Buffer.from(cert.publicKey.rawData))) {
    throw new MeshError('internal', `The ${role} private key does not match the ${role} certificate.`);
  }
  return key;
}

/** Parses the CSR and proves its requester holds the key; every failure is the requester's. */
export async function verifiedCsr(csrPem: string, service: string): Promise<x509.Pkcs10CertificateRequest> {
  const sizeBytes = Buffer.byteLength(csrPem, 'utf8');
  if (sizeBytes > X509_LIMITS.csrPemBytesMax) {
    throw new MeshError('bad_request', `The CSR for ${service} is ${sizeBytes} bytes; the limit is 8 KiB.`);
  }
  let csr: x509.Pkcs10CertificateRequest;
  let signatureOk: boolean;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
    signatureOk = await csr.verify();
  } catch {
    throw new MeshError('bad_request', `The CSR for ${service} is not a readable PEM certificate request.`);
  }
  if (!signatureOk) {
    throw new MeshError(
      'bad_request',
      `The CSR for ${service} has an invalid signature: it was altered or not signed by its key.`,
    );
  }
  const algorithm = csr.publicKey.algorithm as Partial<EcKeyAlgorithm>;
  if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256') {
    throw new MeshError('bad_request', `The CSR for ${service} must carry an ECDSA P-256 key.`);
  }
  return csr;
}
