// compileChain: the discovery chain of one service, as Consul's. From the stored entries it works
// out, once per configuration change, where calls to the service go:
//
//   service-router (http/http2/grpc only) → per route: service-splitter → service-resolver
//     (redirects, subsets) → targets (+ failover targets)
//
// The result is plain data for the proxy worker; route.ts turns it into per-request decisions.
// A configuration that cannot be compiled (a cycle, a missing subset, a chain too long) yields the
// fallback chain straight to the service, with the reasons in `errors`: one bad entry must not
// stop the service's traffic.
import { PROTOCOLS, type Protocol } from '../state/kinds/fields.js';
import { headerOps } from '../state/kinds/header-modifiers.js';
import type { RetryBudgetSpec } from '../state/kinds/retry-budget.js';
import {
  RETRY_ON_CONDITIONS,
  type RouteDestination,
  type ServiceRouterSpec,
} from '../state/kinds/service-router.js';
import { serviceNameProblem } from '../state/kinds/spec-fields.js';
import { ChainWalk, defaultLoadBalancer } from './chain-walk.js';
import { compileFault } from './fault.js';
import type { ChainTarget, CompiledChain, CompiledRoute, Lookup, NextHop } from './types.js';

export { CHAIN_LIMITS } from './chain-walk.js';
export type {
  ChainTarget,
  CompiledChain,
  CompiledRoute,
  Lookup,
  NextHop,
  RequestInfo,
  RouteDecision,
  WeightedTarget,
} from './types.js';

/** Protocols with requests to route; on tcp a splitter chooses once per connection. */
export function isL7(protocol: Protocol): boolean {
  return protocol !== 'tcp';
}

function defaultRoute(next: NextHop): CompiledRoute {
  return { next, numRetries: 0, retryOnStatusCodes: [], retryOnConnectFailure: false, retryOnGrpcCodes: [] };
}

/** Every call straight to the service, every setting at its default: what a broken chain does. */
export function fallbackChain(service: string, protocol: Protocol, errors: string[]): CompiledChain {
  const target: ChainTarget = {
    id: service,
    service,
    onlyPassing: false,
    failover: [],
    loadBalancer: defaultLoadBalancer(),
  };
  return {
    service,
    protocol,
    routes: [defaultRoute({ type: 'target', targetId: service })],
    targets: [target],
    errors,
  };
}

/**
 * A route's retry conditions with its `retryOn` names folded in: status classes join the status
 * codes (sorted, once each), `connect-failure` sets retryOnConnectFailure, gRPC names give codes.
 */
function retryConditions(
  d: RouteDestination | undefined,
): Pick<CompiledRoute, 'retryOnStatusCodes' | 'retryOnConnectFailure' | 'retryOnGrpcCodes'> {
  const codes = new Set(d?.retryOnStatusCodes ?? []);
  const grpc = new Set<number>();
  let connectFailure = d?.retryOnConnectFailure ?? false;
  for (const name of d?.retryOn ?? []) {
    const c: { statusCodes?: readonly number[]; connectFailure?: true; grpcCode?: number } =
      RETRY_ON_CONDITIONS[name];
    for (const s of c.statusCodes ?? []) codes.add(s);
    if (c.connectFailure === true) connectFailure = true;
    if (c.grpcCode !== undefined) grpc.add(c.grpcCode);
  }
  const sorted = (s: Set<number>): number[] => [...s].sort((a, b) => a - b);
  return {
    retryOnStatusCodes: sorted(codes),
    retryOnConnectFailure: connectFailure,
    retryOnGrpcCodes: sorted(grpc),
  };
}

/**
 * A route's numRetries: as set, else 1 when it names a condition to retry on (Consul passes an
 * unset NumRetries to Envoy, whose default is one retry), else 0. An explicit 0 turns retries off.
 */
function numRetriesOf(
  d: RouteDestination | undefined,
  c: Pick<CompiledRoute, 'retryOnStatusCodes' | 'retryOnConnectFailure' | 'retryOnGrpcCodes'>,
): number {
  if (d?.numRetries !== undefined) return d.numRetries;
  const any = c.retryOnStatusCodes.length > 0 || c.retryOnConnectFailure || c.retryOnGrpcCodes.length > 0;
  return any ? 1 : 0;
}

function routeFrom(walk: ChainWalk, service: string, d: RouteDestination | undefined, index: number) {
  const svc = d?.service ?? service;
  const trail = [`service-router ${service} routes[${index}]`];
  return d?.serviceSubset !== undefined ? walk.resolve(svc, d.serviceSubset, trail) : walk.split(svc, trail);
}

function compile(lookup: Lookup, service: string, protocol: Protocol): CompiledChain {
  const walk = new ChainWalk(lookup, isL7(protocol));
  const routes: CompiledRoute[] = [];
  let retryBudget: RetryBudgetSpec | undefined;
  if (isL7(protocol)) {
    const router = walk.spec<ServiceRouterSpec>('service-router', service);
    retryBudget = router?.retryBudget;
    (router?.routes ?? []).forEach((r, i) => {
      const d = r.destination;
      const hop = routeFrom(walk, service, d, i);
      if (hop === undefined) return;
      const next: NextHop = typeof hop === 'string' ? { type: 'target', targetId: hop } : hop;
      const conditions = retryConditions(d);
      const route: CompiledRoute = { next, numRetries: numRetriesOf(d, conditions), ...conditions };
      if (r.match?.http !== undefined) route.match = r.match.http;
      if (d?.prefixRewrite !== undefined) route.prefixRewrite = d.prefixRewrite;
      if (d?.requestTimeoutMs !== undefined) route.requestTimeoutMs = d.requestTimeoutMs;
      if (r.fault !== undefined) route.fault = compileFault(r.fault);
      const request = headerOps(d?.requestHeaders);
      const response = headerOps(d?.responseHeaders);
      if (request !== undefined) route.requestHeaders = request;
      if (response !== undefined) route.responseHeaders = response;
      routes.push(route);
    });
  }
  const rest = walk.split(service, []);
  if (rest !== undefined) routes.push(defaultRoute(rest));
  walk.resolveFailover();
  // Each reason once (an entry reached twice by the same path is one problem); one reached by
  // several routes keeps a reason per path, so the operator sees every route it breaks.
  if (walk.errors.length > 0) return fallbackChain(service, protocol, [...new Set(walk.errors)]);
  const targets = [...walk.targets.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const chain: CompiledChain = { service, protocol, routes, targets, errors: [] };
  if (retryBudget !== undefined) chain.retryBudget = retryBudget;
  return chain;
}

/**
 * The discovery chain of `service` for its `protocol`. `lookup(kind, name)` returns stored specs;
 * a stored spec that fails its kind's validation counts as an error. Never throws.
 */
export function compileChain(lookup: Lookup, service: string, protocol: Protocol): CompiledChain {
  const proto: Protocol = (PROTOCOLS as readonly string[]).includes(protocol) ? protocol : 'tcp';
  const problem = serviceNameProblem(service);
  if (problem !== undefined) return fallbackChain(String(service), proto, [`service name ${problem}`]);
  try {
    return compile(lookup, service, proto);
  } catch (e) {
    // Not expected: validation bounds every input. Kept so a bug degrades to plain routing.
    return fallbackChain(service, proto, [
      `internal error compiling the chain: ${e instanceof Error ? e.message : String(e)}`,
    ]);
  }
}
