// service-router: L7 routes for calls to one service (the entry's name), as Consul's kind of the
// same name. Routes are tried in order; the first whose match accepts the request decides where it
// goes; a request no route matches goes to the service itself. Applies only when the service's
// protocol is http, http2 or grpc: tcp traffic has no requests to match.
import { describe, field } from '../text.js';
import type { ValidationError } from '../types.js';
import { checkFault, type FaultSpec } from './fault.js';
import { specObject } from './fields.js';
import { checkHeaderModifierFields, type HeaderModifiers } from './header-modifiers.js';
import { checkRouteMatch, type HttpMatch } from './http-match.js';
import { checkRetryBudget, type RetryBudgetSpec } from './retry-budget.js';
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
  optText,
  serviceNameProblem,
} from './spec-fields.js';
import type { KindModule } from './types.js';

export type { HeaderMatch, HttpMatch, QueryMatch } from './http-match.js';
export { HTTP_MATCH_LIMITS } from './http-match.js';

export interface RouteDestination {
  /** Default: the router's own service. */
  service?: string;
  /** A subset defined by the destination's service-resolver; unset: its default subset. */
  serviceSubset?: string;
  /** Replaces the matched pathPrefix (or the whole pathExact) before forwarding. */
  prefixRewrite?: string;
  /** Timeout of each attempt (each retry gets its own); unset: the destination resolver's, else 15 s. */
  requestTimeoutMs?: number;
  /**
   * Default 0, or 1 when a retry condition is set (Consul leaves it to Envoy, whose default is 1):
   * a retry re-sends the request, which is only safe for idempotent calls.
   */
  numRetries?: number;
  /** Response status codes that trigger a retry (e.g. 503). */
  retryOnStatusCodes?: number[];
  /** Retry when no connection to an instance could be made (the request never left). */
  retryOnConnectFailure?: boolean;
  /** Conditions by name, as Consul's RetryOn (RETRY_ON_CONDITIONS); gRPC codes retry gRPC calls. */
  retryOn?: RetryOnCondition[];
  /** Headers the caller's agent adds, sets or removes on the route's requests (Consul's RequestHeaders). */
  requestHeaders?: HeaderModifiers;
  /** Headers the caller's agent adds, sets or removes on the answers it relays back (Consul's ResponseHeaders). */
  responseHeaders?: HeaderModifiers;
}

/**
 * The conditions `retryOn` names, as Consul's service-router and Envoy name them. gRPC's are matched
 * on a gRPC call's trailers-only answer (its status before any message), the only one that can
 * still be withheld from the caller.
 */
export const RETRY_ON_CONDITIONS = Object.freeze({
  /** Any HTTP status from 500 to 599, or no connection (as Envoy's, which includes connect-failure). */
  '5xx': { statusCodes: range(500, 599), connectFailure: true },
  /** 502, 503 and 504, the answers of a proxy that could not reach its backend, or no connection. */
  'gateway-error': { statusCodes: [502, 503, 504], connectFailure: true },
  /** As `retryOnConnectFailure: true`. */
  'connect-failure': { connectFailure: true },
  cancelled: { grpcCode: 1 },
  'deadline-exceeded': { grpcCode: 4 },
  'resource-exhausted': { grpcCode: 8 },
  internal: { grpcCode: 13 },
  unavailable: { grpcCode: 14 },
} as const satisfies Record<
  string,
  { statusCodes?: readonly number[]; connectFailure?: true; grpcCode?: number }
>);

export type RetryOnCondition = keyof typeof RETRY_ON_CONDITIONS;

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

export interface Route {
  /** Unset: the route matches every request. */
  match?: { http?: HttpMatch };
  /** Unset: the router's own service. */
  destination?: RouteDestination;
  /** Delay or fail a share of the route's requests at the caller's agent (fault.ts). */
  fault?: FaultSpec;
}

export interface ServiceRouterSpec {
  routes?: Route[];
  /** Bounds the retries of every route together (defaults: RETRY_BUDGET_DEFAULTS). */
  retryBudget?: RetryBudgetSpec;
}

export const SERVICE_ROUTER_LIMITS = Object.freeze({
  /** Routes are matched one by one per request, so their number bounds the work per request. */
  routesMax: 64,
  /** Ten retries already multiply a failing call's load elevenfold; more only prolongs an outage. */
  numRetriesMax: 10,
  retryOnStatusCodesMax: 16,
  retryOnMax: 16,
  /** 2^31 − 1 ms (about 24.8 days): the longest single wait JavaScript schedules. */
  requestTimeoutMsMax: 2_147_483_647,
  prefixRewriteLengthMax: 2048,
});

const FIELDS = ['routes', 'retryBudget'] as const;
const ROUTE_FIELDS = ['match', 'destination', 'fault'] as const;
const DESTINATION_FIELDS = [
  'service',
  'serviceSubset',
  'prefixRewrite',
  'requestTimeoutMs',
  'numRetries',
  'retryOnStatusCodes',
  'retryOnConnectFailure',
  'retryOn',
  'requestHeaders',
  'responseHeaders',
] as const;

function checkStatusCodes(v: unknown, path: string, errors: Errors): void {
  const list = listAt(v, path, 0, SERVICE_ROUTER_LIMITS.retryOnStatusCodesMax, errors);
  list?.forEach((c, i) => {
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 100 || c > 599) {
      errors.push({
        field: item(path, i),
        message: `must be an HTTP status code from 100 to 599, got ${String(c)}`,
      });
    }
  });
}

function checkRetryOn(v: unknown, path: string, errors: Errors): void {
  const list = listAt(v, path, 0, SERVICE_ROUTER_LIMITS.retryOnMax, errors);
  list?.forEach((c, i) => {
    if (typeof c !== 'string' || !Object.hasOwn(RETRY_ON_CONDITIONS, c)) {
      errors.push({
        field: item(path, i),
        message: `must be one of ${Object.keys(RETRY_ON_CONDITIONS).join(', ')}; got ${describe(c)}`,
      });
    }
  });
}

function checkDestination(v: unknown, path: string, hasPathMatch: boolean, errors: Errors): void {
  const d = objectAt(v, path, DESTINATION_FIELDS, errors);
  if (d === undefined) return;
  optServiceName(d, 'service', path, errors);
  optSubsetName(d, 'serviceSubset', path, errors);
  const rewrite = optText(d, 'prefixRewrite', path, SERVICE_ROUTER_LIMITS.prefixRewriteLengthMax, errors);
  if (rewrite !== undefined && !rewrite.startsWith('/')) {
    errors.push({ field: at(path, 'prefixRewrite'), message: 'must start with "/"' });
  } else if (rewrite !== undefined && !hasPathMatch) {
    // Without a matched prefix there is nothing to replace; Consul refuses this too.
    errors.push({
      field: at(path, 'prefixRewrite'),
      message:
        'needs match.http.pathPrefix or match.http.pathExact on the same route (it replaces that part)',
    });
  }
  optInt(d, 'requestTimeoutMs', path, 1, SERVICE_ROUTER_LIMITS.requestTimeoutMsMax, errors);
  optInt(d, 'numRetries', path, 0, SERVICE_ROUTER_LIMITS.numRetriesMax, errors);
  const codes = field(d, 'retryOnStatusCodes');
  if (codes !== undefined) checkStatusCodes(codes, at(path, 'retryOnStatusCodes'), errors);
  optBool(d, 'retryOnConnectFailure', path, errors);
  const on = field(d, 'retryOn');
  if (on !== undefined) checkRetryOn(on, at(path, 'retryOn'), errors);
  checkHeaderModifierFields(d, path, errors);
}

/** Whether a route's match names a path prefix or exact path (read leniently: only for the rewrite rule). */
function hasPathMatch(route: Record<string, unknown>): boolean {
  const m = field(route, 'match');
  const h = typeof m === 'object' && m !== null ? (m as Record<string, unknown>).http : undefined;
  if (typeof h !== 'object' || h === null) return false;
  const o = h as Record<string, unknown>;
  return Object.hasOwn(o, 'pathPrefix') || Object.hasOwn(o, 'pathExact');
}

function validate(spec: unknown): ValidationError[] {
  const errors: ValidationError[] = [];
  const o = specObject(spec, FIELDS, errors);
  if (o === undefined) return errors;
  const budget = field(o, 'retryBudget');
  if (budget !== undefined) checkRetryBudget(budget, 'retryBudget', errors);
  const routes = field(o, 'routes');
  if (routes === undefined) return errors;
  const list = listAt(routes, 'routes', 0, SERVICE_ROUTER_LIMITS.routesMax, errors);
  list?.forEach((r, i) => {
    const path = item('routes', i);
    const route = objectAt(r, path, ROUTE_FIELDS, errors);
    if (route === undefined) return;
    const match = field(route, 'match');
    if (match !== undefined) checkRouteMatch(match, at(path, 'match'), errors);
    const dest = field(route, 'destination');
    if (dest !== undefined) checkDestination(dest, at(path, 'destination'), hasPathMatch(route), errors);
    const fault = field(route, 'fault');
    if (fault !== undefined) checkFault(fault, at(path, 'fault'), errors);
  });
  return errors;
}

/** The entry names the service it routes, so it must be a service name (else it never applies). */
export function validateServiceEntryName(name: string): ValidationError | undefined {
  const problem = serviceNameProblem(name);
  return problem === undefined ? undefined : { field: 'name', message: problem };
}

export const serviceRouter: KindModule = {
  kind: 'service-router',
  description:
    'HTTP/gRPC routes for calls to one service: match path, method, headers, query; pick a destination; budget retries; inject faults.',
  validate,
  validateName: validateServiceEntryName,
};
