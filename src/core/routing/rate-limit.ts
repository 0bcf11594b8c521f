// Rate limits of a service's instances (service-defaults rateLimits.instanceLevel, as Consul's):
// each instance takes at most `requestsPerSecond` requests a second on average, with bursts up to
// `requestsMaxBurst`, over all its callers; a route (by path) may have a limit of its own. The
// instance's agent counts, so the limit holds whichever agents the calls come from. Pure: time
// comes in as `nowMs` (monotonic).

import type { HttpMatch } from '../state/kinds/http-match.js';
import { compileMatch, type RequestPredicate } from './match.js';
import { withNormalPath } from './path-normal.js';
import type { RequestInfo } from './types.js';

export interface RateLimit {
  requestsPerSecond: number;
  requestsMaxBurst: number;
}

/** A token bucket: `requestsMaxBurst` tokens, refilled at `requestsPerSecond`; a request takes one. */
export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  constructor(
    readonly limit: RateLimit,
    nowMs: number,
  ) {
    this.tokens = limit.requestsMaxBurst;
    this.lastMs = nowMs;
  }

  /** Takes a token if one is there (the request may go), else false (refused). */
  take(nowMs: number): boolean {
    const { requestsPerSecond, requestsMaxBurst } = this.limit;
    // A clock that did not advance (or stepped back) refills nothing.
    const elapsedMs = Math.max(0, nowMs - this.lastMs);
    this.tokens = Math.min(requestsMaxBurst, this.tokens + (elapsedMs * requestsPerSecond) / 1000);
    this.lastMs = Math.max(this.lastMs, nowMs);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** One route's limit: requests whose path matches `match` count against it, not the instance's. */
export interface RouteRateLimit extends RateLimit {
  match: Pick<HttpMatch, 'pathExact' | 'pathPrefix' | 'pathRegex'>;
}

export interface InstanceRateLimits {
  /** Unset: requests that match no route are not limited. */
  instance?: RateLimit;
  routes: readonly RouteRateLimit[];
}

/**
 * Which limit a request counts against: the index of the first route whose path matches, or -1
 * for the instance's own; undefined when none applies.
 */
export interface CompiledRateLimits {
  limits: InstanceRateLimits;
  pick(req: RequestInfo): number | undefined;
}

/** Route limits match paths only: no query is read. */
const NO_QUERY: ReadonlyMap<string, string> = new Map();

export function compileRateLimits(limits: InstanceRateLimits): CompiledRateLimits {
  const tests: RequestPredicate[] = limits.routes.map((r) => compileMatch(r.match));
  return {
    limits,
    pick(req) {
      if (tests.length === 0) return limits.instance !== undefined ? -1 : undefined;
      // A route's limit holds however its path is written (`/%61pi` for `/api`).
      const r = withNormalPath(req);
      for (let i = 0; i < tests.length; i++) if ((tests[i] as RequestPredicate)(r, NO_QUERY)) return i;
      return limits.instance !== undefined ? -1 : undefined;
    },
  };
}

/** The limit at `index` (as `pick` returns it). */
export function limitAt(limits: InstanceRateLimits, index: number): RateLimit | undefined {
  return index < 0 ? limits.instance : limits.routes[index];
}
