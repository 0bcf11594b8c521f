// service-resolver: which instances of one service (the entry's name) a call may reach, as Consul's
// kind of the same name: named subsets (instances selected by tags and meta), a default subset,
// a redirect to another service, failover targets when a subset has no healthy instance, and the
// load-balancing policy and timeouts of the resulting targets.
import { DEFINITION_LIMITS, TAG_PATTERN } from '../../catalog/definition-fields.js';
import { field, isObj, type Obj } from '../text.js';
import type { ValidationError } from '../types.js';
import { specObject } from './fields.js';
import { checkLoadBalancer, type LoadBalancer } from './load-balancer.js';
import { checkPassiveHealthCheck, type PassiveHealthCheck } from './passive-health.js';
import { SERVICE_DEFAULTS_LIMITS } from './service-defaults.js';
import { SERVICE_ROUTER_LIMITS, validateServiceEntryName } from './service-router.js';
import {
  at,
  type Errors,
  item,
  listAt,
  objectAt,
  optBool,
  optInt,
  optServiceName,
  optSubsetName,
  subsetNameProblem,
  textProblem,
} from './spec-fields.js';
import type { KindModule } from './types.js';

export type { HashPolicy, LbPolicy, LoadBalancer } from './load-balancer.js';
export { DEFAULT_LB_POLICY, LB_POLICIES, LOAD_BALANCER_LIMITS } from './load-balancer.js';

export interface SubsetFilter {
  /** An instance belongs to the subset when it carries every one of these tags… */
  tags?: string[];
  /** …and every one of these meta keys with exactly this value. */
  meta?: Record<string, string>;
}

export interface Subset {
  /** Unset: every instance of the service. */
  filter?: SubsetFilter;
  /** Default false: instances with a warning check still get traffic (as DNS serves them). */
  onlyPassing?: boolean;
}

export interface ServiceTarget {
  service?: string;
  serviceSubset?: string;
}

export interface ServiceResolverSpec {
  defaultSubset?: string;
  subsets?: Record<string, Subset>;
  redirect?: { service: string; serviceSubset?: string };
  /** Keyed by subset name, or "*" for any subset without its own entry. */
  failover?: Record<string, { targets: ServiceTarget[] }>;
  loadBalancer?: LoadBalancer;
  /** Eject an instance from this service's calls after failures in a row (per caller agent). */
  passiveHealthCheck?: PassiveHealthCheck;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
}

/** The failover key that applies to every subset (and to the service without a subset). */
export const FAILOVER_ANY = '*';

export const SERVICE_RESOLVER_LIMITS = Object.freeze({
  subsetsMax: 32,
  /** Each target is tried in turn when the previous ones have no healthy instance. */
  failoverTargetsMax: 8,
  /** One entry per subset plus "*". */
  failoverEntriesMax: 33,
  tagsMax: DEFINITION_LIMITS.tagsMax,
  tagLengthMax: DEFINITION_LIMITS.tagLengthMax,
  meta: DEFINITION_LIMITS.meta,
  connectTimeoutMsMax: SERVICE_DEFAULTS_LIMITS.connectTimeoutMsMax,
  requestTimeoutMsMax: SERVICE_ROUTER_LIMITS.requestTimeoutMsMax,
});

const FIELDS = [
  'defaultSubset',
  'subsets',
  'redirect',
  'failover',
  'loadBalancer',
  'passiveHealthCheck',
  'connectTimeoutMs',
  'requestTimeoutMs',
] as const;
const SUBSET_FIELDS = ['filter', 'onlyPassing'] as const;
const FILTER_FIELDS = ['tags', 'meta'] as const;
const REDIRECT_FIELDS = ['service', 'serviceSubset'] as const;
const FAILOVER_FIELDS = ['targets'] as const;

/** A map field as an object within `max` entries, or undefined (problem recorded). */
function mapAt(v: unknown, path: string, max: number, what: string, errors: Errors): Obj | undefined {
  if (!isObj(v)) {
    errors.push({ field: path, message: `must be a map of ${what}` });
    return undefined;
  }
  const n = Object.keys(v).length;
  if (n > max) {
    errors.push({ field: path, message: `must hold at most ${max} entries, got ${n}` });
    return undefined;
  }
  return v;
}

function checkFilter(v: unknown, path: string, errors: Errors): void {
  const o = objectAt(v, path, FILTER_FIELDS, errors);
  if (o === undefined) return;
  const tags = field(o, 'tags');
  if (tags !== undefined) {
    const tp = at(path, 'tags');
    listAt(tags, tp, 0, SERVICE_RESOLVER_LIMITS.tagsMax, errors)?.forEach((t, i) => {
      const problem = textProblem(t, SERVICE_RESOLVER_LIMITS.tagLengthMax);
      if (problem !== undefined) errors.push({ field: item(tp, i), message: problem });
      else if (!TAG_PATTERN.test(t as string)) {
        errors.push({ field: item(tp, i), message: "must be a tag: letters, digits, '_' or '-'" });
      }
    });
  }
  const meta = field(o, 'meta');
  if (meta === undefined) return;
  const bounds = SERVICE_RESOLVER_LIMITS.meta;
  const mp = at(path, 'meta');
  const m = mapAt(meta, mp, bounds.entriesMax, 'strings', errors);
  if (m === undefined) return;
  for (const k of Object.keys(m)) {
    const kp = textProblem(k, bounds.keyLengthMax);
    if (kp !== undefined) {
      errors.push({ field: kp === 'must not be empty' ? mp : at(mp, k), message: `key ${kp}` });
      continue;
    }
    const value = m[k];
    // Meta values may be empty in a registration, so an empty value is a valid thing to require.
    const vp = value === '' ? undefined : textProblem(value, bounds.valueLengthMax);
    if (vp !== undefined) errors.push({ field: at(mp, k), message: vp });
  }
}

/** Checks the subsets; returns the names defined (valid or not), for defaultSubset and failover. */
function checkSubsets(v: unknown, errors: Errors): Set<string> {
  const names = new Set<string>();
  const m = mapAt(v, 'subsets', SERVICE_RESOLVER_LIMITS.subsetsMax, 'subset names to subsets', errors);
  if (m === undefined) return names;
  for (const name of Object.keys(m)) {
    names.add(name);
    const path = at('subsets', name);
    const problem = subsetNameProblem(name);
    if (problem !== undefined) errors.push({ field: path, message: `subset name ${problem}` });
    const s = objectAt(m[name], path, SUBSET_FIELDS, errors);
    if (s === undefined) continue;
    const filter = field(s, 'filter');
    if (filter !== undefined) checkFilter(filter, at(path, 'filter'), errors);
    optBool(s, 'onlyPassing', path, errors);
  }
  return names;
}

function checkTarget(v: unknown, path: string, errors: Errors): void {
  const o = objectAt(v, path, ['service', 'serviceSubset'], errors);
  if (o === undefined) return;
  if (field(o, 'service') === undefined && field(o, 'serviceSubset') === undefined) {
    errors.push({
      field: path,
      message: 'set service, serviceSubset or both: an empty target is the failing one itself',
    });
  }
  optServiceName(o, 'service', path, errors);
  optSubsetName(o, 'serviceSubset', path, errors);
}

function checkFailover(v: unknown, subsets: Set<string>, hasSubsets: boolean, errors: Errors): void {
  const { failoverEntriesMax, failoverTargetsMax } = SERVICE_RESOLVER_LIMITS;
  const m = mapAt(v, 'failover', failoverEntriesMax, 'subset names (or "*") to failover policies', errors);
  if (m === undefined) return;
  for (const key of Object.keys(m)) {
    const path = at('failover', key);
    if (key !== FAILOVER_ANY && !subsets.has(key)) {
      const known = hasSubsets
        ? `defined subsets: ${[...subsets].sort().join(', ')}`
        : 'no subsets are defined';
      errors.push({ field: path, message: `must be "*" or the name of a subset (${known})` });
    }
    const o = objectAt(m[key], path, FAILOVER_FIELDS, errors);
    if (o === undefined) continue;
    const targets = field(o, 'targets');
    const tp = at(path, 'targets');
    if (targets === undefined) {
      errors.push({ field: tp, message: 'is required: the services or subsets to try, in order' });
      continue;
    }
    listAt(targets, tp, 1, failoverTargetsMax, errors)?.forEach((t, i) => {
      checkTarget(t, item(tp, i), errors);
    });
  }
}

function checkRedirect(o: Obj, v: unknown, errors: Errors): void {
  const r = objectAt(v, 'redirect', REDIRECT_FIELDS, errors);
  if (r !== undefined) {
    if (field(r, 'service') === undefined) {
      errors.push({ field: 'redirect.service', message: 'is required: the service to send the calls to' });
    } else optServiceName(r, 'service', 'redirect', errors);
    optSubsetName(r, 'serviceSubset', 'redirect', errors);
  }
  // A redirected service never uses its own subsets or settings: the destination's resolver decides.
  for (const k of FIELDS) {
    if (k !== 'redirect' && field(o, k) !== undefined) {
      errors.push({
        field: k,
        message: 'has no effect with redirect (the destination resolver decides); remove one',
      });
    }
  }
}

function validate(spec: unknown): ValidationError[] {
  const errors: ValidationError[] = [];
  const o = specObject(spec, FIELDS, errors);
  if (o === undefined) return errors;
  const redirect = field(o, 'redirect');
  if (redirect !== undefined) checkRedirect(o, redirect, errors);
  const subsetsValue = field(o, 'subsets');
  const subsets = subsetsValue === undefined ? new Set<string>() : checkSubsets(subsetsValue, errors);
  const def = optSubsetName(o, 'defaultSubset', '', errors);
  if (def !== undefined && !subsets.has(def)) {
    const known =
      subsets.size > 0 ? `defined subsets: ${[...subsets].sort().join(', ')}` : 'no subsets are defined';
    errors.push({ field: 'defaultSubset', message: `must name a subset defined under subsets (${known})` });
  }
  const failover = field(o, 'failover');
  if (failover !== undefined) checkFailover(failover, subsets, subsets.size > 0, errors);
  const lb = field(o, 'loadBalancer');
  if (lb !== undefined) checkLoadBalancer(lb, 'loadBalancer', errors);
  const passive = field(o, 'passiveHealthCheck');
  if (passive !== undefined) checkPassiveHealthCheck(passive, 'passiveHealthCheck', errors);
  optInt(o, 'connectTimeoutMs', '', 1, SERVICE_RESOLVER_LIMITS.connectTimeoutMsMax, errors);
  optInt(o, 'requestTimeoutMs', '', 1, SERVICE_RESOLVER_LIMITS.requestTimeoutMsMax, errors);
  return errors;
}

export const serviceResolver: KindModule = {
  kind: 'service-resolver',
  description:
    'Subsets, default subset, redirect, failover, load balancing and passive health checks for calls to one service.',
  validate,
  validateName: validateServiceEntryName,
};
