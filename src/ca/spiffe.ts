// SPIFFE identities of mesh workloads: `spiffe://<trust-domain>/svc/<service>`. The proxy authorizes
// a peer by this URI, never by the subject or a DNS name, so parsing is strict: anything that is not
// exactly one well-formed mesh URI SAN yields `undefined` and the connection is treated as anonymous.
import type { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { MeshError } from '../api/types.js';
import { DEFINITION_LIMITS, SERVICE_NAME_PATTERN } from '../core/catalog/definition-fields.js';

export const SPIFFE_LIMITS = Object.freeze({
  /** A trust domain is a DNS name (it ends the leaf's DNS SAN), so the DNS bound of 253. */
  trustDomainLengthMax: 253,
  /** Services are DNS labels: the catalog's bound, so every registered service can get a cert. */
  serviceLengthMax: DEFINITION_LIMITS.nameLengthMax,
  /** Node's subjectaltname string of a mesh leaf is ~600 bytes at most; a huge one is not ours. */
  subjectAltNameLengthMax: 8192,
});

/** Lower-case DNS labels separated by dots: no empty label, no underscore (SPIFFE allows one, but the
 * trust domain also ends a DNS SAN, where OpenSSL's hostname matching would reject it). */
const TRUST_DOMAIN_PATTERN = /^[a-z0-9-]+(\.[a-z0-9-]+)*$/;

export interface SpiffeIdentity {
  trustDomain: string;
  service: string;
}

/** Why `trustDomain` is unusable, or undefined when it is fine. */
export function trustDomainProblem(trustDomain: string): string | undefined {
  if (trustDomain.length === 0 || trustDomain.length > SPIFFE_LIMITS.trustDomainLengthMax) {
    return `must be 1 to ${SPIFFE_LIMITS.trustDomainLengthMax} characters`;
  }
  if (!TRUST_DOMAIN_PATTERN.test(trustDomain)) {
    return 'must be lower-case letters, digits and hyphens in dot-separated labels (like 3f9c2a1e.mesh)';
  }
  return undefined;
}

/** Why `service` is unusable, or undefined. The catalog's rule, so any registered service qualifies. */
export function serviceNameProblem(service: string): string | undefined {
  if (service.length === 0 || service.length > SPIFFE_LIMITS.serviceLengthMax) {
    return `must be 1 to ${SPIFFE_LIMITS.serviceLengthMax} characters`;
  }
  if (!SERVICE_NAME_PATTERN.test(service)) {
    return "must be lower-case letters, digits and '-', not starting or ending with '-'";
  }
  return undefined;
}

export function assertTrustDomain(trustDomain: string): void {
  const problem = trustDomainProblem(trustDomain);
  if (problem !== undefined) throw new MeshError('bad_request', `Trust domain "${trustDomain}" ${problem}.`);
}

export function assertService(service: string): void {
  const problem = serviceNameProblem(service);
  if (problem !== undefined) throw new MeshError('bad_request', `Service name "${service}" ${problem}.`);
}

/** The URI SAN of a service's leaf certificate. */
export function spiffeId(trustDomain: string, service: string): string {
  assertTrustDomain(trustDomain);
  assertService(service);
  return `spiffe://${trustDomain}/svc/${service}`;
}

/** The URI SAN of a root: the trust domain itself, as SPIFFE bundles identify it. */
export function trustDomainId(trustDomain: string): string {
  assertTrustDomain(trustDomain);
  return `spiffe://${trustDomain}`;
}

/** The leaf's DNS SAN, usable as the TLS servername: `<service>.svc.<trustDomain>`. */
export function serviceDnsName(trustDomain: string, service: string): string {
  assertTrustDomain(trustDomain);
  assertService(service);
  const name = `${service}.svc.${trustDomain}`;
  if (name.length > SPIFFE_LIMITS.trustDomainLengthMax) {
    throw new MeshError(
      'bad_request',
      `The DNS name ${name} is longer than 253 characters; use a shorter service name or trust domain.`,
    );
  }
  return name;
}

/** The identity in a mesh workload URI; undefined for any other URI (including a root's). */
export function parseSpiffe(uri: string): SpiffeIdentity | undefined {
  const m = /^spiffe:\/\/([^/]+)\/svc\/([^/]+)$/.exec(uri);
  if (m === null) return undefined;
  const trustDomain = m[1]!;
  const service = m[2]!;
  if (trustDomainProblem(trustDomain) !== undefined || serviceNameProblem(service) !== undefined) {
    return undefined;
  }
  return { trustDomain, service };
}

/**
 * The identity of a peer from its certificate's URI SAN, as Node shows it ("URI:spiffe://…" in
 * `subjectaltname` of `getPeerCertificate()`, `subjectAltName` of `X509Certificate`). SPIFFE requires
 * exactly one URI SAN; a certificate with none, several, or a foreign one is no mesh identity.
 * This does not check the chain: call it only on a socket whose `authorized` is true.
 */
export function peerServiceOf(cert: PeerCertificate | X509Certificate): SpiffeIdentity | undefined {
  const san = 'subjectaltname' in cert ? cert.subjectaltname : (cert as X509Certificate).subjectAltName;
  if (typeof san !== 'string' || san.length > SPIFFE_LIMITS.subjectAltNameLengthMax) return undefined;
  // Entries are joined by ", ". Node quotes (JSON) a value holding a comma or quote; a mesh URI never
  // does, so a quoted URI entry is not ours and counts as a foreign URI.
  const uris = san
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice('URI:'.length));
  if (uris.length !== 1) return undefined;
  return parseSpiffe(uris[0]!);
}
