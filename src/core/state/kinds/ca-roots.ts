// ca-roots: the cluster CA's public side, written by the Raft leader only (created when the
// cluster first has a leader, replaced by `mesh ca rotate`). Every agent trusts these roots.
// Private keys are never here: this entry reaches every replica; keys stay on the voters.
import { field, isObj } from '../text.js';
import type { ValidationError } from '../types.js';
import { specObject } from './fields.js';
import type { KindModule } from './types.js';

export interface CaRootRecord {
  /** Lowercase hex SHA-256 fingerprint of the root certificate. */
  id: string;
  certPem: string;
  /** This root's certificate issued by the previous root (rotation), sent after leaves it signed. */
  crossSignedPem?: string;
  notAfterMs: number;
}

export interface CaRootsSpec {
  /** SPIFFE trust domain of the cluster, e.g. "3f9c2a1e.mesh". */
  trustDomain: string;
  activeRootId: string;
  /** Newest first: the active root and, until its leaves expire, the one before it. */
  roots: CaRootRecord[];
}

export const CA_ROOTS_NAME = 'global';

export const CA_ROOTS_LIMITS = Object.freeze({
  /** The active root and the previous one; a third rotation drops the oldest. */
  rootsMax: 2,
  pemLengthMax: 8192,
  trustDomainLengthMax: 253,
});

const TRUST_DOMAIN = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;
const HEX_ID = /^[0-9a-f]{64}$/;
const PEM_CERT = /^-----BEGIN CERTIFICATE-----\r?\n[\s\S]+-----END CERTIFICATE-----\s*$/;

function checkPem(v: unknown, path: string, errors: ValidationError[]): void {
  if (typeof v !== 'string' || v.length > CA_ROOTS_LIMITS.pemLengthMax || !PEM_CERT.test(v)) {
    errors.push({
      field: path,
      message: `must be one PEM certificate of at most ${CA_ROOTS_LIMITS.pemLengthMax} characters`,
    });
  }
}

function validate(spec: unknown): ValidationError[] {
  const errors: ValidationError[] = [];
  const o = specObject(spec, ['trustDomain', 'activeRootId', 'roots'], errors);
  if (o === undefined) return errors;
  const td = field(o, 'trustDomain');
  if (typeof td !== 'string' || td.length > CA_ROOTS_LIMITS.trustDomainLengthMax || !TRUST_DOMAIN.test(td)) {
    errors.push({
      field: 'trustDomain',
      message: 'must be a DNS-like name of lowercase letters, digits, dots and hyphens',
    });
  }
  const roots = field(o, 'roots');
  if (!Array.isArray(roots) || roots.length < 1 || roots.length > CA_ROOTS_LIMITS.rootsMax) {
    errors.push({ field: 'roots', message: `must be a list of 1 to ${CA_ROOTS_LIMITS.rootsMax} roots` });
    return errors;
  }
  const ids = new Set<string>();
  roots.forEach((r, i) => {
    const at = `roots[${i}]`;
    const ro = specObject(r, ['id', 'certPem', 'crossSignedPem', 'notAfterMs'], errors);
    if (ro === undefined || !isObj(r)) return;
    const id = field(ro, 'id');
    if (typeof id !== 'string' || !HEX_ID.test(id))
      errors.push({ field: `${at}.id`, message: 'must be 64 lowercase hex digits' });
    else if (ids.has(id)) errors.push({ field: `${at}.id`, message: 'duplicate root id' });
    else ids.add(id);
    checkPem(field(ro, 'certPem'), `${at}.certPem`, errors);
    if (field(ro, 'crossSignedPem') !== undefined)
      checkPem(field(ro, 'crossSignedPem'), `${at}.crossSignedPem`, errors);
    const na = field(ro, 'notAfterMs');
    if (typeof na !== 'number' || !Number.isSafeInteger(na) || na < 0) {
      errors.push({
        field: `${at}.notAfterMs`,
        message: 'must be a non-negative integer (ms since the epoch)',
      });
    }
  });
  const active = field(o, 'activeRootId');
  if (typeof active !== 'string' || !ids.has(active)) {
    errors.push({ field: 'activeRootId', message: 'must be the id of one of the roots' });
  }
  return errors;
}

function validateName(name: string): ValidationError | undefined {
  return name === CA_ROOTS_NAME
    ? undefined
    : { field: 'name', message: `must be "${CA_ROOTS_NAME}" (there is one CA)` };
}

export const caRoots: KindModule = {
  kind: 'ca-roots',
  description: 'The cluster CA roots every agent trusts (written by the leader; see `mesh ca`).',
  validate,
  validateName,
  managed: true,
};
