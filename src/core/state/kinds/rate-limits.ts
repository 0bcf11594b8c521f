// service-defaults rateLimits: how many requests a second each instance of the service takes, as
// Consul's service-defaults RateLimits.InstanceLevel. Checked here; enforced by the instance's
// agent (src/core/routing/rate-limit.ts, src/proxy/inbound.ts).
import { field } from '../text.js';
import type { ValidationError } from '../types.js';
import { checkPathFields } from './http-match.js';
import { at, item, listAt, objectAt, optInt } from './spec-fields.js';

export interface RateLimitsSpec {
  instanceLevel?: {
    /** Average requests a second each instance takes over all callers; unset: no instance-wide limit. */
    requestsPerSecond?: number;
    /** The most requests at once after a quiet spell; default requestsPerSecond. */
    requestsMaxBurst?: number;
    /** Limits of their own for paths; the first whose path matches applies instead of the instance's. */
    routes?: Array<{
      pathExact?: string;
      pathPrefix?: string;
      pathRegex?: string;
      requestsPerSecond: number;
      requestsMaxBurst?: number;
    }>;
  };
}

export const RATE_LIMITS_LIMITS = Object.freeze({
  /** A million a second is beyond what one agent relays; a larger number is a typo. */
  requestsPerSecondMax: 1_000_000,
  requestsMaxBurstMax: 1_000_000,
  /** Routes are matched one by one per request, as a router's. */
  routesMax: 32,
});

const FIELDS = ['instanceLevel'] as const;
const INSTANCE_FIELDS = ['requestsPerSecond', 'requestsMaxBurst', 'routes'] as const;
const ROUTE_FIELDS = [
  'pathExact',
  'pathPrefix',
  'pathRegex',
  'requestsPerSecond',
  'requestsMaxBurst',
] as const;

function checkRate(
  o: Record<string, unknown>,
  path: string,
  required: boolean,
  errors: ValidationError[],
): void {
  const { requestsPerSecondMax, requestsMaxBurstMax } = RATE_LIMITS_LIMITS;
  // Consul: required for a route, and wherever requestsMaxBurst is set (a burst alone limits nothing).
  if ((required || field(o, 'requestsMaxBurst') !== undefined) && field(o, 'requestsPerSecond') === undefined)
    errors.push({
      field: at(path, 'requestsPerSecond'),
      message: 'is required: the requests a second it allows',
    });
  optInt(o, 'requestsPerSecond', path, 1, requestsPerSecondMax, errors);
  optInt(o, 'requestsMaxBurst', path, 1, requestsMaxBurstMax, errors);
}

export function checkRateLimits(v: unknown, path: string, errors: ValidationError[]): void {
  const o = objectAt(v, path, FIELDS, errors);
  const il = o === undefined ? undefined : field(o, 'instanceLevel');
  if (il === undefined) return;
  const ip = at(path, 'instanceLevel');
  const inst = objectAt(il, ip, INSTANCE_FIELDS, errors);
  if (inst === undefined) return;
  checkRate(inst, ip, false, errors);
  const routes = field(inst, 'routes');
  if (routes === undefined) return;
  const list = listAt(routes, at(ip, 'routes'), 0, RATE_LIMITS_LIMITS.routesMax, errors);
  list?.forEach((r, i) => {
    const rp = item(at(ip, 'routes'), i);
    const route = objectAt(r, rp, ROUTE_FIELDS, errors);
    if (route === undefined) return;
    checkPathFields(route, rp, errors);
    if (['pathExact', 'pathPrefix', 'pathRegex'].every((k) => field(route, k) === undefined))
      errors.push({ field: rp, message: 'needs one of pathExact, pathPrefix, pathRegex' });
    checkRate(route, rp, true, errors);
  });
}
