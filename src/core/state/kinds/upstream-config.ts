// service-defaults' `upstreamConfig` (Consul's field of the same name): how the calling service's
// agent treats its calls to other services. `defaults` applies to every destination; an entry of
// `overrides` names one destination and replaces the defaults' `limits` for it (Consul merges an
// override's Limits as a whole). Only `limits` is taken: Consul's other fields live elsewhere here
// (passiveHealthCheck and connectTimeoutMs on the destination's service-resolver, the protocol on
// its service-defaults). The gate that applies the limits: core/routing/upstream-limits.ts.
import { field } from '../text.js';
import { at, type Errors, item, listAt, objectAt, optInt, optServiceName } from './spec-fields.js';

/**
 * Caller-side circuit breakers (Envoy's cluster circuit breakers), counted by each agent per
 * calling service and destination. Unset: no limit.
 */
export interface UpstreamLimits {
  /** TCP connections, or HTTP/1.1 requests being carried, at once; HTTP/1.1 requests past it wait. */
  maxConnections?: number;
  /** HTTP/1.1 requests waiting for one of maxConnections at once (default 1,024 when maxConnections is set). */
  maxPendingRequests?: number;
  /** HTTP/1.1, HTTP/2 and gRPC requests in flight at once; one more is refused. */
  maxConcurrentRequests?: number;
}

export interface UpstreamSettings {
  limits?: UpstreamLimits;
}

export interface UpstreamOverride extends UpstreamSettings {
  /** The destination service, as an upstream names it. */
  name: string;
}

export interface UpstreamConfigSpec {
  defaults?: UpstreamSettings;
  overrides?: UpstreamOverride[];
}

export const UPSTREAM_CONFIG_LIMITS = Object.freeze({
  /** Overrides per entry: one per destination the service calls, and few services call more. */
  overridesMax: 256,
  /** 2^31 − 1, as the other counts of service-defaults: far above what one agent carries. */
  countMax: 2_147_483_647,
});

/** Envoy's default max_pending_requests: requests wait for a connection unless told otherwise. */
export const PENDING_REQUESTS_DEFAULT = 1_024;

const LIMIT_FIELDS = ['maxConnections', 'maxPendingRequests', 'maxConcurrentRequests'] as const;
const DEFAULTS_FIELDS = ['limits'] as const;
const OVERRIDE_FIELDS = ['name', 'limits'] as const;
const CONFIG_FIELDS = ['defaults', 'overrides'] as const;

function checkLimits(v: unknown, path: string, errors: Errors): void {
  const o = objectAt(v, path, LIMIT_FIELDS, errors);
  if (o === undefined) return;
  const max = UPSTREAM_CONFIG_LIMITS.countMax;
  optInt(o, 'maxConnections', path, 1, max, errors);
  // 0: nothing waits; a request past maxConnections is refused at once.
  optInt(o, 'maxPendingRequests', path, 0, max, errors);
  optInt(o, 'maxConcurrentRequests', path, 1, max, errors);
}

function checkSettings(o: Record<string, unknown>, path: string, errors: Errors): void {
  const limits = field(o, 'limits');
  if (limits !== undefined) checkLimits(limits, at(path, 'limits'), errors);
}

/** Check a service-defaults `upstreamConfig` at `path`. */
export function checkUpstreamConfig(v: unknown, path: string, errors: Errors): void {
  const o = objectAt(v, path, CONFIG_FIELDS, errors);
  if (o === undefined) return;
  const defaults = field(o, 'defaults');
  if (defaults !== undefined) {
    const d = objectAt(defaults, at(path, 'defaults'), DEFAULTS_FIELDS, errors);
    if (d !== undefined) checkSettings(d, at(path, 'defaults'), errors);
  }
  const overrides = field(o, 'overrides');
  if (overrides === undefined) return;
  const list = listAt(overrides, at(path, 'overrides'), 0, UPSTREAM_CONFIG_LIMITS.overridesMax, errors);
  if (list === undefined) return;
  const seen = new Map<string, number>();
  list.forEach((entry, i) => {
    const p = item(at(path, 'overrides'), i);
    const e = objectAt(entry, p, OVERRIDE_FIELDS, errors);
    if (e === undefined) return;
    if (field(e, 'name') === undefined) {
      errors.push({
        field: at(p, 'name'),
        message: 'is required: the destination service the override is for',
      });
    } else {
      const name = optServiceName(e, 'name', p, errors);
      const first = name === undefined ? undefined : seen.get(name);
      if (first !== undefined)
        errors.push({
          field: at(p, 'name'),
          message: `"${name}" is already overridden at overrides[${first}]`,
        });
      else if (name !== undefined) seen.set(name, i);
    }
    checkSettings(e, p, errors);
  });
}

/**
 * The limits `config` sets for calls to `destination`: its override's, else the defaults'.
 * Read leniently (the entry was validated when written); undefined when none applies or the
 * limits object sets nothing.
 */
export function upstreamLimitsFor(config: unknown, destination: string): UpstreamLimits | undefined {
  if (typeof config !== 'object' || config === null) return undefined;
  const c = config as UpstreamConfigSpec;
  const override = Array.isArray(c.overrides) ? c.overrides.find((o) => o?.name === destination) : undefined;
  const limits = override?.limits !== undefined ? override.limits : c.defaults?.limits;
  return cleanLimits(limits);
}

/** Only the limits that are set, as numbers; undefined when none is. */
function cleanLimits(limits: unknown): UpstreamLimits | undefined {
  if (typeof limits !== 'object' || limits === null) return undefined;
  const out: UpstreamLimits = {};
  for (const k of LIMIT_FIELDS) {
    const v = (limits as Record<string, unknown>)[k];
    if (typeof v === 'number') out[k] = v;
  }
  return Object.keys(out).length === 0 ? undefined : out;
}
