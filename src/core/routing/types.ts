// Types of the discovery chain: the compiled, plain-data answer to "where do calls to service S
// go". It is posted to the proxy worker, so it holds only strings, numbers, booleans, plain objects
// and arrays: no RegExp (patterns stay source strings), no functions, no Map.
import type { Protocol } from '../state/kinds/fields.js';
import type { HeaderOps } from '../state/kinds/header-modifiers.js';
import type { PassiveHealthCheck } from '../state/kinds/passive-health.js';
import type { RetryBudgetSpec } from '../state/kinds/retry-budget.js';
import type { LoadBalancer, SubsetFilter } from '../state/kinds/service-resolver.js';
import type { HttpMatch } from '../state/kinds/service-router.js';
import type { CompiledFault } from './fault.js';

/** Reads a stored configuration entry's spec; undefined when there is none. */
export type Lookup = (kind: string, name: string) => unknown;

/** One (service, subset) pair calls may be sent to, with everything needed to pick an instance. */
export interface ChainTarget {
  /** "subset.service", or "service" without a subset; unique within a chain. */
  id: string;
  service: string;
  subset?: string;
  /** Instances must match it; unset: every instance of the service. */
  filter?: SubsetFilter;
  /** Only instances whose every check passes (warning excluded). */
  onlyPassing: boolean;
  /** Target ids to try in order when this one has no healthy instance (never transitive). */
  failover: string[];
  loadBalancer: LoadBalancer;
  /** The service resolver's passive health check; unset: failures eject no instance. */
  passiveHealthCheck?: PassiveHealthCheck;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
}

/** One share of a split: `weight` percent of calls go to `targetId`. */
export interface WeightedTarget {
  weight: number;
  targetId: string;
  /** Header changes of the split (a nested splitter's first); unset: none. */
  requestHeaders?: HeaderOps[];
  responseHeaders?: HeaderOps[];
}

/** Where a route sends calls: one target, or a weighted split (weights add up to 100). */
export type NextHop = { type: 'target'; targetId: string } | { type: 'split'; splits: WeightedTarget[] };

export interface CompiledRoute {
  /** Unset: every request (the default route, always last). */
  match?: HttpMatch;
  next: NextHop;
  prefixRewrite?: string;
  /** The route's own timeout; unset: the chosen target's requestTimeoutMs, if any. */
  requestTimeoutMs?: number;
  numRetries: number;
  /** Statuses that count as failed and are retried: the route's list and its `retryOn` classes. */
  retryOnStatusCodes: number[];
  retryOnConnectFailure: boolean;
  /** gRPC status codes (numbers) whose trailers-only answers are retried; from `retryOn`. */
  retryOnGrpcCodes: number[];
  /** Delays and errors injected into a share of the route's requests; unset: none. */
  fault?: CompiledFault;
  /** The route destination's header changes; unset: none. */
  requestHeaders?: HeaderOps;
  responseHeaders?: HeaderOps;
}

export interface CompiledChain {
  service: string;
  protocol: Protocol;
  /**
   * The router's routes in order, then the default route (no match) to the service itself. For
   * tcp the default route is the only one: there are no requests to match.
   */
  routes: CompiledRoute[];
  /** Every target any route or failover list names, sorted by id. */
  targets: ChainTarget[];
  /** The router's retry budget; unset: the defaults (retries are budgeted whenever a route has any). */
  retryBudget?: RetryBudgetSpec;
  /**
   * Why the configuration could not be compiled; empty when it could. A chain with errors routes
   * every call straight to the service with default settings, so traffic keeps flowing while an
   * operator fixes the entries.
   */
  errors: string[];
}

/** The request facts routes match on. */
export interface RequestInfo {
  /** The path, normally without the query string (anything from "?" on is ignored). */
  path: string;
  method: string;
  /** Names in any case (Node gives lower case); repeated headers as arrays. */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  /** The raw query string, with or without the leading "?". */
  query: string;
}

/** What the router decided for one request. */
export interface RouteDecision {
  target: ChainTarget;
  /** Index into the chain's routes (the last one is the default route). */
  routeIndex: number;
  /** The path to forward: rewritten when the route has prefixRewrite, else the request's. */
  path: string;
  prefixRewrite?: string;
  requestTimeoutMs?: number;
  numRetries: number;
  /** Statuses that count as failed and are retried: the route's list and its `retryOn` classes. */
  retryOnStatusCodes: number[];
  retryOnConnectFailure: boolean;
  /** gRPC status codes (numbers) whose trailers-only answers are retried; from `retryOn`. */
  retryOnGrpcCodes: number[];
  /** The route's fault injection; unset: none. */
  fault?: CompiledFault;
  /**
   * Header changes for the request and for the answer relayed back, applied in order: the split
   * share's, then the route's (which wins where both set a header). Unset: none.
   */
  requestHeaders?: HeaderOps[];
  responseHeaders?: HeaderOps[];
}
