// Per-request and per-connection decisions over a compiled chain. A ChainRouter compiles the
// chain's matches once (regexes included); each decision then walks the routes in order, draws a
// split share from the caller's random number, and names the target. Picking an instance of the
// target (health, subset filter, failover) is instancesFor / resolveWithFailover.

import { isHealthy } from '../catalog/health.js';
import type { CheckStatus } from '../catalog/types.js';
import type { HeaderOps } from '../state/kinds/header-modifiers.js';
import { fallbackChain } from './chain.js';
import { compileMatch, parseQuery, type RequestPredicate, rewritePath } from './match.js';
import type {
  ChainTarget,
  CompiledChain,
  NextHop,
  RequestInfo,
  RouteDecision,
  WeightedTarget,
} from './types.js';

/** A number in [0, 1): anything else (NaN, 1, −3) is clamped, so a bad draw still picks a share. */
function unit(rand: number): number {
  if (!(rand > 0)) return 0;
  return rand < 1 ? rand : 1 - Number.EPSILON;
}

/** The target id of the share `rand` falls in (pickShare). */
export function pickSplit(splits: readonly WeightedTarget[], rand: number): string | undefined {
  return pickShare(splits, rand)?.targetId;
}

/**
 * The share `rand` falls in: shares are laid end to end over [0, total) and the first whose end
 * lies past rand × total wins, so a 90/10 split sends rand < 0.9 to the first share.
 */
export function pickShare(splits: readonly WeightedTarget[], rand: number): WeightedTarget | undefined {
  let total = 0;
  // NaN and negative weights count as 0 (a stored chain is validated, but this costs nothing).
  for (const s of splits) if (s.weight > 0) total += s.weight;
  const x = unit(rand) * total;
  let end = 0;
  let last: WeightedTarget | undefined;
  for (const s of splits) {
    if (!(s.weight > 0)) continue;
    end += s.weight;
    last = s;
    if (x < end) return s;
  }
  return last; // rounding left x at the very end: the last share with weight
}

/** A decision's header changes for the request and for the answer. */
interface HeaderChanges {
  request?: HeaderOps[];
  response?: HeaderOps[];
}

function changes(request: HeaderOps[] | undefined, response: HeaderOps[] | undefined): HeaderChanges {
  return { ...(request !== undefined ? { request } : {}), ...(response !== undefined ? { response } : {}) };
}

/** A share's header changes, then its route's; undefined when neither has any. */
function opsOf(share: HeaderOps[] | undefined, route: HeaderOps | undefined): HeaderOps[] | undefined {
  if (route === undefined) return share;
  return share === undefined ? [route] : [...share, route];
}

function hopTargets(next: NextHop): string[] {
  return next.type === 'target' ? [next.targetId] : next.splits.map((s) => s.targetId);
}

/** Whether every target id a chain names exists, so decisions never meet a dangling id. */
function wellFormed(chain: CompiledChain): boolean {
  if (!Array.isArray(chain.routes) || chain.routes.length === 0 || !Array.isArray(chain.targets))
    return false;
  const ids = new Set(chain.targets.map((t) => t.id));
  for (const r of chain.routes) {
    if (!hopTargets(r.next).every((id) => ids.has(id))) return false;
  }
  return chain.targets.every((t) => t.failover.every((id) => ids.has(id)));
}

export interface ConnectionDecision {
  target: ChainTarget;
  routeIndex: number;
}

const NO_QUERY: ReturnType<typeof parseQuery> = new Map();

export class ChainRouter {
  readonly chain: CompiledChain;
  private readonly byId = new Map<string, ChainTarget>();
  private readonly matchers: RequestPredicate[];
  /** Per route, the header changes its decisions carry; made once, so a request allocates none. */
  private readonly routeOps: HeaderChanges[];
  /** Per share of a split that has changes of its own: the share's, then its route's. */
  private readonly shareOps = new Map<WeightedTarget, HeaderChanges>();

  /** A malformed chain (dangling target ids) is replaced by the service's fallback chain. */
  constructor(chain: CompiledChain) {
    this.chain = wellFormed(chain)
      ? chain
      : fallbackChain(chain.service, chain.protocol, [...(chain.errors ?? []), 'malformed compiled chain']);
    for (const t of this.chain.targets) this.byId.set(t.id, t);
    this.matchers = this.chain.routes.map((r) => compileMatch(r.match));
    this.routeOps = this.chain.routes.map((r) => {
      if (r.next.type === 'split')
        for (const s of r.next.splits)
          if (s.requestHeaders !== undefined || s.responseHeaders !== undefined)
            this.shareOps.set(
              s,
              changes(opsOf(s.requestHeaders, r.requestHeaders), opsOf(s.responseHeaders, r.responseHeaders)),
            );
      return changes(opsOf(undefined, r.requestHeaders), opsOf(undefined, r.responseHeaders));
    });
  }

  target(id: string): ChainTarget | undefined {
    return this.byId.get(id);
  }

  private hop(next: NextHop, rand: number): ChainTarget {
    return this.targetOf(next.type === 'target' ? next.targetId : pickSplit(next.splits, rand));
  }

  private targetOf(id: string | undefined): ChainTarget {
    // wellFormed guarantees the id; the first target is a defensive answer that cannot be reached.
    return (id === undefined ? undefined : this.byId.get(id)) ?? (this.chain.targets[0] as ChainTarget);
  }

  /** The first route whose match accepts `req` (the default route accepts all); `rand` in [0, 1). */
  routeRequest(req: RequestInfo, rand: number): RouteDecision {
    const last = this.chain.routes.length - 1;
    // Only matchers read the query: a chain with just its default route never parses it.
    const query = last > 0 ? parseQuery(req.query) : NO_QUERY;
    let index = last;
    for (let i = 0; i < last; i++) {
      if ((this.matchers[i] as RequestPredicate)(req, query)) {
        index = i;
        break;
      }
    }
    const route = this.chain.routes[index] as CompiledChain['routes'][number];
    const share = route.next.type === 'split' ? pickShare(route.next.splits, rand) : undefined;
    const target = this.targetOf(route.next.type === 'target' ? route.next.targetId : share?.targetId);
    const decision: RouteDecision = {
      target,
      routeIndex: index,
      path: rewritePath(req.path, route.match, route.prefixRewrite),
      numRetries: route.numRetries,
      retryOnStatusCodes: route.retryOnStatusCodes,
      retryOnConnectFailure: route.retryOnConnectFailure,
      retryOnGrpcCodes: route.retryOnGrpcCodes,
    };
    if (route.prefixRewrite !== undefined) decision.prefixRewrite = route.prefixRewrite;
    if (route.fault !== undefined) decision.fault = route.fault;
    const timeoutMs = route.requestTimeoutMs ?? target.requestTimeoutMs;
    if (timeoutMs !== undefined) decision.requestTimeoutMs = timeoutMs;
    const ops =
      (share === undefined ? undefined : this.shareOps.get(share)) ?? (this.routeOps[index] as HeaderChanges);
    if (ops.request !== undefined) decision.requestHeaders = ops.request;
    if (ops.response !== undefined) decision.responseHeaders = ops.response;
    return decision;
  }

  /** A tcp connection: the default route (splitter and resolver only), one draw per connection. */
  routeConnection(rand: number): ConnectionDecision {
    const index = this.chain.routes.length - 1;
    const route = this.chain.routes[index] as CompiledChain['routes'][number];
    return { target: this.hop(route.next, rand), routeIndex: index };
  }

  /** resolveWithFailover over this chain's targets. */
  resolve<T extends SubsetView>(
    target: ChainTarget,
    instancesOf: (service: string) => readonly T[],
    healthOf: (instance: T) => CheckStatus,
  ): FailoverResult<T> {
    return resolveWithFailover(target, (id) => this.byId.get(id), instancesOf, healthOf);
  }
}

/** What the subset filter reads of an instance (catalog instances and proxy endpoints alike). */
export interface SubsetView {
  tags: readonly string[];
  meta: Readonly<Record<string, string>>;
}

/** Whether an instance belongs to the target's subset: every filter tag present, every meta equal. */
export function inSubset(target: ChainTarget, instance: SubsetView): boolean {
  const f = target.filter;
  if (f === undefined) return true;
  for (const tag of f.tags ?? []) if (!instance.tags.includes(tag)) return false;
  const meta = f.meta ?? {};
  for (const k of Object.keys(meta)) {
    if (!Object.hasOwn(instance.meta, k) || instance.meta[k] !== meta[k]) return false;
  }
  return true;
}

/**
 * The instances of `target` that may take calls: in its subset, and healthy (passing, or also
 * warning unless the subset is onlyPassing). `instances` should be the target service's.
 */
export function instancesFor<T extends SubsetView>(
  target: ChainTarget,
  instances: readonly T[],
  healthOf: (instance: T) => CheckStatus,
): T[] {
  return instances.filter((i) => {
    const status = healthOf(i);
    const healthy = target.onlyPassing ? status === 'passing' : isHealthy(status);
    return healthy && inSubset(target, i);
  });
}

export interface FailoverResult<T> {
  /** The target that has instances: the one asked for, or the failover target used. */
  target: ChainTarget;
  /** Empty when neither the target nor any failover target has a healthy instance. */
  instances: T[];
  /** Whether a failover target answered instead of the one asked for. */
  failedOver: boolean;
}

/**
 * The target's healthy instances, or else those of its failover targets in order (one level: a
 * failover target's own failover list is not followed, so the walk is bounded by the list).
 */
export function resolveWithFailover<T extends SubsetView>(
  target: ChainTarget,
  targetById: (id: string) => ChainTarget | undefined,
  instancesOf: (service: string) => readonly T[],
  healthOf: (instance: T) => CheckStatus,
): FailoverResult<T> {
  const primary = instancesFor(target, instancesOf(target.service), healthOf);
  if (primary.length > 0) return { target, instances: primary, failedOver: false };
  for (const id of target.failover) {
    const t = targetById(id);
    if (t === undefined) continue;
    const found = instancesFor(t, instancesOf(t.service), healthOf);
    if (found.length > 0) return { target: t, instances: found, failedOver: true };
  }
  return { target, instances: [], failedOver: false };
}
