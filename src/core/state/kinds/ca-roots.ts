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
  /**
   * When a rotation replaced it as the active root (ms since the epoch). Absent on the active root,
   * and on roots replaced by a version that did not record it (a rotation stamps those with its
   * own time: kept one more leaf lifetime rather than dropped while their leaves may be in use).
   */
  rotatedOutAtMs?: number;
}

export interface CaRootsSpec {
  /** SPIFFE trust domain of the cluster, e.g. "3f9c2a1e.mesh". */
  trustDomain: string;
  activeRootId: string;
  /** Newest first: the active root and the replaced roots whose leaves may still be in use. */
  roots: CaRootRecord[];
}

export const CA_ROOTS_NAME = 'global';

export const CA_ROOTS_LIMITS = Object.freeze({
  /**
   * The active root and up to three it replaced whose leaves may still be in use: three rotations
   * within one leaf lifetime, and a fourth is refused until the oldest of them may go.
   */
  rootsMax: 4,
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

/**
 * How long past `rotatedOutAtMs` a replaced root stays trusted, beyond the leaf lifetime: a voter
 * may sign one more leaf under it just after the rotation, before it applies the new roots, and
 * voters' clocks differ a little.
 */
export const ROTATED_ROOT_MARGIN_MS = 10 * 60_000;

export type RotationKeep =
  | { ok: true; roots: CaRootRecord[] }
  /** Refused: `replaced` roots are still in use, and the rotation may run at `retryAtMs`. */
  | { ok: false; replaced: number; retryAtMs: number };

/**
 * The roots a rotation at `nowMs` keeps besides the new one, newest first: the active root, stamped
 * as replaced now, and each root replaced less than `keepMs` ago (a leaf it signed may still be in
 * use; `keepMs` is the leaf lifetime plus ROTATED_ROOT_MARGIN_MS). Dropping one of those would
 * break its leaves' calls, so a rotation that would need to is refused, with the time it may run.
 */
export function rootsKeptByRotation(cur: CaRootsSpec, nowMs: number, keepMs: number): RotationKeep {
  const active = cur.roots.find((r) => r.id === cur.activeRootId);
  if (active === undefined) throw new Error(`ca-roots: the active root ${cur.activeRootId} is not in roots`);
  const replaced = cur.roots
    .filter((r) => r.id !== cur.activeRootId)
    .map((r) => (r.rotatedOutAtMs === undefined ? { ...r, rotatedOutAtMs: nowMs } : r))
    .filter((r) => (r.rotatedOutAtMs as number) + keepMs > nowMs);
  const room = CA_ROOTS_LIMITS.rootsMax - 2;
  if (replaced.length > room) {
    // The roots still needed, by when each may go: the rotation may run once enough have.
    const goAtMs = replaced.map((r) => (r.rotatedOutAtMs as number) + keepMs).sort((a, b) => a - b);
    const retryAtMs = goAtMs[replaced.length - room - 1] as number;
    return { ok: false, replaced: replaced.length, retryAtMs };
  }
  return { ok: true, roots: [{ ...active, rotatedOutAtMs: nowMs }, ...replaced] };
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
    const ro = specObject(r, ['id', 'certPem', 'crossSignedPem', 'notAfterMs', 'rotatedOutAtMs'], errors);
    if (ro === undefined || !isObj(r)) return;
    const id = field(ro, 'id');
    if (typeof id !== 'string' || !HEX_ID.test(id))
      errors.push({ field: `${at}.id`, message: 'must be 64 lowercase hex digits' });
    else if (ids.has(id)) errors.push({ field: `${at}.id`, message: 'duplicate root id' });
    else ids.add(id);
    checkPem(field(ro, 'certPem'), `${at}.certPem`, errors);
    if (field(ro, 'crossSignedPem') !== undefined)
      checkPem(field(ro, 'crossSignedPem'), `${at}.crossSignedPem`, errors);
    for (const name of ['notAfterMs', 'rotatedOutAtMs']) {
      const v = field(ro, name);
      if (v === undefined && name === 'rotatedOutAtMs') continue;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
        errors.push({
          field: `${at}.${name}`,
          message: 'must be a non-negative integer (ms since the epoch)',
        });
      }
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
