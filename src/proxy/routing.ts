// The proxy's routing table: the last snapshot from the control plane, turned into what a request
// needs — the chain router per destination, the candidate instances per target (subset filter,
// health, failover), a balancer per target, the intention decision, the local instances.
// Derived data is rebuilt on every snapshot; balancers survive snapshots (their latency and
// outstanding counts are the point of having them) unless the target's policy changed.

import { randomInt } from 'node:crypto';
import { SeededRng } from '../core/rand.js';
import {
  type CompiledL7Rule,
  compileL7Rule,
  decideIntention,
  decideRequest,
} from '../core/routing/intentions.js';
import { type Balancer, createBalancer } from '../core/routing/lb.js';
import type { LbContext } from '../core/routing/lb-common.js';
import { RetryBudget, retryBudgetSettings } from '../core/routing/retry-budget.js';
import { ChainRouter, inSubset } from '../core/routing/route.js';
import type { ChainTarget, RequestInfo, RouteDecision } from '../core/routing/types.js';
import type { HashPolicy } from '../core/state/kinds/load-balancer.js';
import { type HeadersWithUnderscoresAction, headersWithUnderscoresAction } from '../core/state/kinds/mesh.js';
import { type UpstreamLimits, upstreamLimitsFor } from '../core/state/kinds/upstream-config.js';
import { Ejections } from './ejections.js';
import { Faults } from './faults.js';
import { entryOf, newMap } from './maps.js';
import { RateLimiter } from './rate-limiter.js';
import type { ProxyEndpoint, ProxyLocalInstance, ProxySnapshot } from './types.js';
import { UpstreamGates } from './upstream-gates.js';

/** Intention decisions cached per snapshot (source × destination pairs). */
const INTENTIONS_CACHED_MAX = 4_096;
/** Pairs (calling service, destination) whose circuit-breaker limits are remembered per snapshot. */
const LIMITS_CACHED_MAX = 4_096;
/** Balancers kept at once (one per destination target); bounded like every map here. */
const BALANCERS_MAX = 4_096;
const CONNECT_TIMEOUT_MS_DEFAULT = 5_000;
/** Consul's default route timeout: a request without an answer in 15 s gets a 504. */
export const REQUEST_TIMEOUT_MS_DEFAULT = 15_000;

/** A request as ring_hash reads it: the key of the first hash policy that yields one (read only when the target has policies). */
export interface HashKeySource {
  hashKey(policies: readonly HashPolicy[]): string | undefined;
}

export type Picked =
  | {
      endpoint: ProxyEndpoint;
      balancer: Balancer;
      target: ChainTarget;
      decision: RouteDecision;
      connectTimeoutMs: number;
      requestTimeoutMs: number;
    }
  | { error: string };

/** The snapshot before the first: nothing to route, no certificates, no listeners. */
/** What an intention says of a pair: for L4, `allow`; with `l7`, per request (intentionFor). */
export interface IntentionVerdict {
  allow: boolean;
  reason: string;
  l7?: CompiledL7Rule;
}

export const EMPTY_SNAPSHOT: ProxySnapshot = {
  version: { raft: 0, catalog: 0 },
  trustDomain: '',
  roots: [],
  certs: {},
  upstreams: [],
  chains: {},
  endpoints: {},
  local: [],
  intentions: {},
  mesh: undefined,
  accessLogs: false,
};

interface BalancerEntry {
  policy: string;
  balancer: Balancer;
}

export class RoutingTable {
  private snap: ProxySnapshot = EMPTY_SNAPSHOT;
  private readonly rng = new SeededRng(randomInt(0, 2 ** 32 - 1));
  private routers = new Map<string, ChainRouter>();
  private chainJson = new Map<string, string>();
  private candidates = new Map<string, ProxyEndpoint[]>();
  private byId = new Map<string, ProxyEndpoint>();
  private localByService = new Map<string, ProxyLocalInstance[]>();
  private localById = new Map<string, Map<string, ProxyLocalInstance>>();
  /** Intention decisions of this snapshot, by source and destination. */
  /** Decisions by source, then destination (nested: see maps.ts). */
  private intentions = new Map<string, Map<string, IntentionVerdict>>();
  private intentionsCached = 0;
  /** limitsNow's answers for this snapshot, by source and destination. */
  private readonly limitsCache = new Map<string, UpstreamLimits | undefined>();
  private readonly balancers = new Map<string, BalancerEntry>();
  /** Passive health checks: instances this agent stopped calling for a while after failures in a row. */
  readonly ejections = new Ejections();
  /** service-defaults rate limits of the local instances. */
  readonly rateLimiter = new RateLimiter();
  /** The mesh entry's headersWithUnderscoresAction, for the requests this agent's instances take. */
  headersWithUnderscores: HeadersWithUnderscoresAction = 'ALLOW';
  /** Fault injection of the routes this agent's callers use. */
  readonly faults = new Faults(() => this.draw());
  /** The callers' circuit breakers (service-defaults upstreamConfig limits); they outlive snapshots. */
  readonly gates = new UpstreamGates((source, destination) => this.limitsNow(source, destination));
  private readonly drawn: () => number;

  /** `draw`: the draws of faults and retry back-off (tests pin them); default, the seeded generator. */
  constructor(draw?: () => number) {
    this.drawn = draw ?? (() => this.rng.next());
  }
  /** Retry budgets by destination, made on a destination's first retryable request; they outlive snapshots. */
  private readonly budgets = new Map<string, RetryBudget>();
  /** Front cache of `balancers` by target object, valid while `balancers` still holds the entry. */
  private readonly balancerByTarget = new WeakMap<ChainTarget, { key: string; entry: BalancerEntry }>();

  /** The balancers' context for one pick, two shapes, reused: no balancer keeps it past `pick`. */
  private readonly lbPlain: LbContext = { nowMs: 0 };
  private readonly lbHashed: LbContext = { nowMs: 0, hashKey: '' };

  get snapshot(): ProxySnapshot {
    return this.snap;
  }

  apply(s: ProxySnapshot): void {
    // Everything that can throw comes before the first assignment: a bad snapshot changes nothing.
    const routers = new Map<string, ChainRouter>();
    const chainJson = new Map<string, string>();
    for (const [dest, chain] of Object.entries(s.chains)) {
      // Regexes compile once per chain change, not per snapshot.
      const json = JSON.stringify(chain);
      const prev = this.routers.get(dest);
      routers.set(dest, prev && this.chainJson.get(dest) === json ? prev : new ChainRouter(chain));
      chainJson.set(dest, json);
    }
    this.chainJson = chainJson;
    this.snap = s;
    this.limitsCache.clear();
    this.ejections.apply(s);
    this.rateLimiter.apply(s);
    this.headersWithUnderscores = headersWithUnderscoresAction(s.mesh);
    for (const [dest, budget] of this.budgets) {
      const router = routers.get(dest);
      if (router === undefined) this.budgets.delete(dest);
      else budget.update(retryBudgetSettings(router.chain.retryBudget));
    }
    this.routers = routers;
    this.candidates = new Map();
    this.intentions = new Map();
    this.intentionsCached = 0;
    this.byId = new Map();
    for (const list of Object.values(s.endpoints)) for (const e of list) this.byId.set(e.id, e);
    this.localByService = new Map();
    this.localById = new Map();
    for (const i of s.local) {
      const list = this.localByService.get(i.service) ?? [];
      list.push(i);
      this.localByService.set(i.service, list);
      entryOf(this.localById, i.service, newMap).set(i.id, i);
    }
  }

  /** The retry budget of calls to `dest` (a destination this snapshot routes to). */
  retryBudget(dest: string): RetryBudget {
    let b = this.budgets.get(dest);
    if (b === undefined) {
      b = new RetryBudget(retryBudgetSettings(this.routers.get(dest)?.chain.retryBudget));
      // Bounded by the destinations of the snapshot (apply drops the others).
      this.budgets.set(dest, b);
    }
    return b;
  }

  /**
   * The limits of calls from `source` to `destination` in this snapshot: its upstream's, else its
   * HTTP proxy port's. Asked whenever a limited pair's gate is made (each request, when its calls
   * come one at a time): remembered per snapshot, for at most LIMITS_CACHED_MAX pairs.
   */
  limitsNow(source: string, destination: string): UpstreamLimits | undefined {
    const key = `${source}\u0000${destination}`;
    if (this.limitsCache.has(key)) return this.limitsCache.get(key);
    const u = this.snap.upstreams.find((x) => x.source === source && x.destination === destination);
    const limits = u !== undefined ? u.limits : this.upstreamLimits(source, destination);
    if (this.limitsCache.size >= LIMITS_CACHED_MAX) this.limitsCache.clear();
    this.limitsCache.set(key, limits);
    return limits;
  }

  /** The limits of calls from `source` to `destination` on the HTTP proxy port (its upstreamConfig). */
  upstreamLimits(source: string, destination: string): UpstreamLimits | undefined {
    const configs = this.snap.upstreamConfigs;
    return configs === undefined ? undefined : upstreamLimitsFor(configs[source], destination);
  }

  /** The protocol of the chain to `dest`, or undefined when this snapshot has no route to it. */
  chainProtocol(dest: string): string | undefined {
    return this.routers.get(dest)?.chain.protocol;
  }

  localInstances(service: string): ProxyLocalInstance[] {
    return this.localByService.get(service) ?? [];
  }

  /** The local instance `id` of `service`, looked up rather than searched: asked per request. */
  localInstance(service: string, id: string): ProxyLocalInstance | undefined {
    return this.localById.get(service)?.get(id);
  }

  /**
   * May `source` call `destination` at all? Asked per connection and request: decided once per pair
   * and snapshot. A verdict with `l7` (an intention with permissions) denies a connection, and
   * decides each request by `intentionFor`.
   */
  intention(source: string, destination: string): IntentionVerdict {
    const held = this.intentions.get(source)?.get(destination);
    if (held !== undefined) return held;
    const d = decideIntention(
      (kind, name) =>
        kind === 'service-intentions'
          ? this.snap.intentions[name]
          : kind === 'mesh' && name === 'global'
            ? this.snap.mesh
            : undefined,
      source,
      destination,
    );
    const out: IntentionVerdict = { allow: d.action === 'allow', reason: d.reason };
    if (d.l7 !== undefined) out.l7 = compileL7Rule(d.l7);
    // Pairs come from certificates and local names, but a bound keeps a flood of names harmless.
    if (this.intentionsCached >= INTENTIONS_CACHED_MAX) {
      this.intentions.clear();
      this.intentionsCached = 0;
    }
    entryOf(this.intentions, source, newMap).set(destination, out);
    this.intentionsCached++;
    return out;
  }

  /**
   * May `source` make this request of `destination`: the pair's verdict, or the permission of its
   * L7 intention that fits. `info(of)` is called only for an L7 intention (a function and its
   * argument, not a closure: nothing is allocated per request on the common path).
   */
  intentionFor<T>(
    source: string,
    destination: string,
    of: T,
    info: (of: T) => RequestInfo,
  ): { allow: boolean; reason: string } {
    const v = this.intention(source, destination);
    if (v.l7 === undefined) return v;
    const d = decideRequest(v.l7, info(of));
    return { allow: d.action === 'allow', reason: d.reason };
  }

  /** An instance for a new L4 connection to `dest`. */
  pickTcp(dest: string, exclude: ReadonlySet<string>, nowMs: number): Picked {
    const router = this.routers.get(dest);
    if (!router) return { error: `no route to ${dest}` };
    const c = router.routeConnection(this.rng.next());
    const decision: RouteDecision = {
      ...c,
      path: '',
      numRetries: 0,
      retryOnStatusCodes: [],
      retryOnConnectFailure: true,
      retryOnGrpcCodes: [],
    };
    return this.pick(dest, decision, exclude, nowMs, undefined);
  }

  /**
   * Where one HTTP/gRPC request to `dest` goes: its route, split share and target (instances are
   * picked by `pickRouted`, for each attempt). Undefined when this snapshot has no route to `dest`.
   */
  route(dest: string, req: RequestInfo): RouteDecision | undefined {
    return this.routers.get(dest)?.routeRequest(req, this.rng.next());
  }

  /**
   * An instance of the decided target (else of its failover targets) for one attempt of a request
   * to `dest`; `request.hashKey(policies)` reads the request for ring_hash. A decision made under an
   * earlier snapshot still picks by its target's id in this one.
   */
  pickRouted(
    dest: string,
    decision: RouteDecision,
    exclude: ReadonlySet<string>,
    nowMs: number,
    request: HashKeySource,
  ): Picked {
    return this.pick(dest, decision, exclude, nowMs, request);
  }

  /** A draw in [0, 1) for faults and retry back-off. */
  draw(): number {
    return this.drawn();
  }

  private pick(
    dest: string,
    decision: RouteDecision,
    exclude: ReadonlySet<string>,
    nowMs: number,
    request: HashKeySource | undefined,
  ): Picked {
    const router = this.routers.get(dest);
    if (router === undefined) return { error: `no route to ${dest}` };
    const failover = decision.target.failover;
    // The decided target, else its failover targets in order: the first with a healthy instance.
    for (let i = -1; i < failover.length; i++) {
      const target = router.target(i < 0 ? decision.target.id : (failover[i] as string));
      if (!target) continue;
      const cands = this.ejections.filter(target.service, this.candidatesOf(target));
      if (cands.length === 0) continue;
      const balancer = this.balancerOf(dest, target);
      const policies = target.loadBalancer.hashPolicies;
      const key = policies && request ? request.hashKey(policies) : undefined;
      let lb: LbContext;
      if (key === undefined) {
        lb = this.lbPlain;
      } else {
        lb = this.lbHashed;
        lb.hashKey = key;
      }
      lb.nowMs = nowMs;
      const chosen = balancer.pick(cands, lb, exclude);
      const endpoint = chosen ? this.byId.get(chosen.id) : undefined;
      if (!endpoint) continue;
      return {
        endpoint,
        balancer,
        target,
        decision,
        connectTimeoutMs: target.connectTimeoutMs ?? CONNECT_TIMEOUT_MS_DEFAULT,
        requestTimeoutMs: decision.requestTimeoutMs ?? target.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT,
      };
    }
    return { error: `no healthy instance of ${decision.target.id}` };
  }

  /** Healthy instances of a target (subset filter applied), cached until the next snapshot. */
  private candidatesOf(t: ChainTarget): ProxyEndpoint[] {
    let c = this.candidates.get(t.id);
    if (c === undefined) {
      c = (this.snap.endpoints[t.service] ?? []).filter(
        (e) => (t.onlyPassing ? e.passing : e.healthy) && inSubset(t, e),
      );
      this.candidates.set(t.id, c);
    }
    return c;
  }

  private balancerOf(dest: string, t: ChainTarget): Balancer {
    // Per target object (one per router) first: no key string per request.
    const cached = this.balancerByTarget.get(t);
    if (cached !== undefined && this.balancers.get(cached.key) === cached.entry) return cached.entry.balancer;
    const key = `${dest}|${t.id}`;
    const policy = t.loadBalancer.policy;
    let entry = this.balancers.get(key);
    if (entry === undefined || entry.policy !== policy) {
      if (this.balancers.size >= BALANCERS_MAX) this.balancers.clear();
      const balancer = createBalancer(
        policy,
        this.rng,
        t.loadBalancer.ringHash ? { ringHash: t.loadBalancer.ringHash } : {},
      );
      entry = { policy, balancer };
      this.balancers.set(key, entry);
    }
    this.balancerByTarget.set(t, { key, entry });
    return entry.balancer;
  }
}
