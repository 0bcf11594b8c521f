// The load-balancing part of service-resolver: how a proxy picks one instance of a target. Split
// from service-resolver.ts to keep that file about subsets, redirects and failover.
import { field } from '../text.js';
import {
  at,
  atMostOne,
  type Errors,
  item,
  listAt,
  objectAt,
  optEnum,
  optInt,
  optText,
} from './spec-fields.js';

export const LB_POLICIES = ['round_robin', 'least_request', 'ewma', 'ring_hash', 'random'] as const;
export type LbPolicy = (typeof LB_POLICIES)[number];
/** Round robin spreads load evenly with no state beyond a counter; the usual default of proxies. */
export const DEFAULT_LB_POLICY: LbPolicy = 'round_robin';

export const HASH_FIELDS = ['header', 'cookie', 'query_parameter'] as const;
export type HashField = (typeof HASH_FIELDS)[number];

/** What ring_hash hashes to pick an instance; the first policy that yields a value is used. */
export type HashPolicy = { field: HashField; fieldValue: string } | { sourceIp: true };

export interface LoadBalancer {
  policy: LbPolicy;
  /** Only with ring_hash. Larger rings spread keys more evenly and cost more memory. */
  ringHash?: { minimumRingSize?: number; maximumRingSize?: number };
  /** Only with ring_hash: without one, every call hashes to a random point (no affinity). */
  hashPolicies?: HashPolicy[];
}

export const LOAD_BALANCER_LIMITS = Object.freeze({
  /** Envoy's ceiling for ring sizes: 8M entries. */
  ringSizeMax: 8_388_608,
  hashPoliciesMax: 8,
  /** Header, cookie and query parameter names. */
  fieldValueLengthMax: 256,
});

const LB_FIELDS = ['policy', 'ringHash', 'hashPolicies'] as const;
const RING_FIELDS = ['minimumRingSize', 'maximumRingSize'] as const;
const HASH_POLICY_FIELDS = ['field', 'fieldValue', 'sourceIp'] as const;

function checkRingHash(v: unknown, path: string, errors: Errors): void {
  const o = objectAt(v, path, RING_FIELDS, errors);
  if (o === undefined) return;
  const max = LOAD_BALANCER_LIMITS.ringSizeMax;
  optInt(o, 'minimumRingSize', path, 1, max, errors);
  optInt(o, 'maximumRingSize', path, 1, max, errors);
  const lo = field(o, 'minimumRingSize');
  const hi = field(o, 'maximumRingSize');
  if (typeof lo === 'number' && typeof hi === 'number' && lo > hi) {
    errors.push({ field: at(path, 'minimumRingSize'), message: `must not exceed maximumRingSize (${hi})` });
  }
}

function checkHashPolicy(v: unknown, path: string, errors: Errors): void {
  const o = objectAt(v, path, HASH_POLICY_FIELDS, errors);
  if (o === undefined) return;
  atMostOne(o, ['field', 'sourceIp'], path, errors);
  const sourceIp = field(o, 'sourceIp');
  if (sourceIp !== undefined) {
    if (sourceIp !== true)
      errors.push({ field: at(path, 'sourceIp'), message: 'must be true (or left out)' });
    if (field(o, 'fieldValue') !== undefined) {
      errors.push({ field: at(path, 'fieldValue'), message: 'only goes with field, not with sourceIp' });
    }
    return;
  }
  if (field(o, 'field') === undefined) {
    errors.push({
      field: at(path, 'field'),
      message: `is required (one of ${HASH_FIELDS.join(', ')}) unless sourceIp is true`,
    });
  } else optEnum(o, 'field', path, HASH_FIELDS, errors);
  if (field(o, 'fieldValue') === undefined) {
    errors.push({
      field: at(path, 'fieldValue'),
      message: 'is required: the header, cookie or parameter name to hash',
    });
  } else optText(o, 'fieldValue', path, LOAD_BALANCER_LIMITS.fieldValueLengthMax, errors);
}

/** Check a resolver's `loadBalancer` at `path`. */
export function checkLoadBalancer(v: unknown, path: string, errors: Errors): void {
  const o = objectAt(v, path, LB_FIELDS, errors);
  if (o === undefined) return;
  const policy = field(o, 'policy');
  if (policy === undefined) {
    errors.push({ field: at(path, 'policy'), message: `is required: one of ${LB_POLICIES.join(', ')}` });
  } else optEnum(o, 'policy', path, LB_POLICIES, errors);
  const ring = field(o, 'ringHash');
  const hashes = field(o, 'hashPolicies');
  // Other policies ignore these; refusing them keeps an operator from believing they apply.
  const onlyRing = policy !== undefined && policy !== 'ring_hash';
  if (ring !== undefined) {
    if (onlyRing) errors.push({ field: at(path, 'ringHash'), message: 'only applies with policy ring_hash' });
    else checkRingHash(ring, at(path, 'ringHash'), errors);
  }
  if (hashes !== undefined) {
    if (onlyRing)
      errors.push({ field: at(path, 'hashPolicies'), message: 'only applies with policy ring_hash' });
    else {
      const hp = at(path, 'hashPolicies');
      listAt(hashes, hp, 0, LOAD_BALANCER_LIMITS.hashPoliciesMax, errors)?.forEach((h, i) => {
        checkHashPolicy(h, item(hp, i), errors);
      });
    }
  }
}
