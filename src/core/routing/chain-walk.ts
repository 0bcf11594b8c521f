// The graph walk behind compileChain: from a service (or a service and subset) through splitters
// and resolver redirects down to targets, and from each target to its failover targets. Every
// path is bounded (CHAIN_LIMITS.depthMax steps, cycles refused) and so is the whole walk
// (stepsMax, targetsMax), so any configuration compiles in bounded time. Problems are recorded as
// messages, never thrown.

import { headerOps } from '../state/kinds/header-modifiers.js';
import { KINDS } from '../state/kinds/index.js';
import {
  DEFAULT_LB_POLICY,
  FAILOVER_ANY,
  type LoadBalancer,
  type ServiceResolverSpec,
} from '../state/kinds/service-resolver.js';
import type { ServiceSplitterSpec } from '../state/kinds/service-splitter.js';
import { formatValidationError } from '../state/text.js';
import type { ChainTarget, Lookup, NextHop, WeightedTarget } from './types.js';

export const CHAIN_LIMITS = Object.freeze({
  /**
   * Splitter and resolver steps on one path (nested splitters, redirects). Real chains take two
   * or three; eight leaves room while making a runaway chain an error rather than a long walk.
   */
  depthMax: 8,
  /** Steps of the whole compilation: nested 32-way splitters would otherwise multiply. */
  stepsMax: 4096,
  /** Targets in one chain (routes × splits × failover). */
  targetsMax: 256,
  /** Shares of one flattened split (nested splitters multiply their shares). */
  splitsMax: 256,
});

/** An own property of a stored map, so a subset named "constructor" never reads the prototype. */
export function own<T>(map: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return map !== undefined && Object.hasOwn(map, key) ? map[key] : undefined;
}

export function targetId(service: string, subset: string | undefined): string {
  return subset === undefined ? service : `${subset}.${service}`;
}

/** The settings of a target no resolver speaks for. */
export function defaultLoadBalancer(): LoadBalancer {
  return { policy: DEFAULT_LB_POLICY };
}

export class ChainWalk {
  readonly errors: string[] = [];
  readonly targets = new Map<string, ChainTarget>();
  private readonly specs = new Map<string, unknown>();
  private readonly failoverQueue: ChainTarget[] = [];
  private steps = 0;

  /** `l7`: the chain routes requests (http, http2, grpc); a tcp chain keeps no header changes. */
  constructor(
    private readonly lookup: Lookup,
    private readonly l7 = true,
  ) {}

  /**
   * A stored spec that passes its kind's validation, or undefined. A spec that fails (written by a
   * newer agent, say) is an error: guessing at its meaning could send traffic somewhere unintended.
   */
  spec<T>(kind: string, name: string): T | undefined {
    const key = `${kind} ${name}`;
    if (this.specs.has(key)) return this.specs.get(key) as T | undefined;
    let value: unknown;
    try {
      value = this.lookup(kind, name);
    } catch (e) {
      this.errors.push(`${key}: could not be read (${e instanceof Error ? e.message : 'unknown error'})`);
    }
    const problems = value === undefined ? [] : (KINDS[kind]?.validate(value) ?? []);
    const first = problems[0];
    if (first !== undefined) {
      this.errors.push(`${key}: invalid stored entry (${formatValidationError(first)})`);
      value = undefined;
    }
    this.specs.set(key, value);
    return value as T | undefined;
  }

  /** Count one step; false (with the error recorded) when the path or the walk is too long. */
  private step(trail: readonly string[], stepName: string): boolean {
    const seen = trail.indexOf(stepName);
    if (seen >= 0) {
      this.errors.push(`cycle: ${[...trail.slice(seen), stepName].join(' → ')}`);
      return false;
    }
    if (trail.length >= CHAIN_LIMITS.depthMax) {
      this.errors.push(
        `chain longer than ${CHAIN_LIMITS.depthMax} steps: ${[...trail, stepName].join(' → ')}`,
      );
      return false;
    }
    this.steps++;
    if (this.steps > CHAIN_LIMITS.stepsMax) {
      if (this.steps === CHAIN_LIMITS.stepsMax + 1) {
        this.errors.push(`configuration too complex: more than ${CHAIN_LIMITS.stepsMax} steps to compile`);
      }
      return false;
    }
    return true;
  }

  /** Calls for `service` with no subset chosen: its splitter if it has one, else its resolver. */
  split(service: string, trail: readonly string[]): NextHop | undefined {
    const stepName = `service-splitter ${service}`;
    const spec = this.spec<ServiceSplitterSpec>('service-splitter', service);
    if (spec === undefined) return this.single(this.resolve(service, undefined, trail));
    if (!this.step(trail, stepName)) return undefined;
    const next = [...trail, stepName];
    // Shares to one target with the same header changes are one share; with different ones, two.
    const shares = new Map<string, WeightedTarget>();
    for (const s of spec.splits) {
      if (s.weight <= 0) continue; // never chosen; not worth a target
      const svc = s.service ?? service;
      // A split to the splitter's own service goes to its resolver, not round the splitter again.
      const hop =
        s.serviceSubset !== undefined || svc === service
          ? this.single(this.resolve(svc, s.serviceSubset, next))
          : this.split(svc, next);
      if (hop === undefined) return undefined;
      const parts: WeightedTarget[] =
        hop.type === 'target' ? [{ targetId: hop.targetId, weight: 100 }] : hop.splits;
      // A tcp connection has no headers: its shares are weights alone.
      const request = this.l7 ? headerOps(s.requestHeaders) : undefined;
      const response = this.l7 ? headerOps(s.responseHeaders) : undefined;
      for (const p of parts) {
        // A nested splitter's changes first, then this split's: the less specific is applied
        // last and wins where both set one header (as Envoy orders a cluster's and its route's).
        const share: WeightedTarget = { targetId: p.targetId, weight: (s.weight * p.weight) / 100 };
        const req = [...(p.requestHeaders ?? []), ...(request !== undefined ? [request] : [])];
        const resp = [...(p.responseHeaders ?? []), ...(response !== undefined ? [response] : [])];
        if (req.length > 0) share.requestHeaders = req;
        if (resp.length > 0) share.responseHeaders = resp;
        const key =
          req.length + resp.length > 0 ? `${p.targetId}\u0000${JSON.stringify([req, resp])}` : p.targetId;
        const held = shares.get(key);
        if (held !== undefined) held.weight += share.weight;
        else shares.set(key, share);
      }
    }
    if (shares.size > CHAIN_LIMITS.splitsMax) {
      this.errors.push(
        `${stepName}: more than ${CHAIN_LIMITS.splitsMax} shares once nested splitters are expanded`,
      );
      return undefined;
    }
    const splits = [...shares.values()];
    const only = splits[0];
    // One share and nothing to change: a plain target.
    return splits.length === 1 &&
      only !== undefined &&
      only.requestHeaders === undefined &&
      only.responseHeaders === undefined
      ? { type: 'target', targetId: only.targetId }
      : { type: 'split', splits };
  }

  private single(id: string | undefined): NextHop | undefined {
    return id === undefined ? undefined : { type: 'target', targetId: id };
  }

  /** The target for (service, subset) through the service's resolver and its redirects. */
  resolve(service: string, subset: string | undefined, trail: readonly string[]): string | undefined {
    const stepName = `service-resolver ${service}`;
    if (!this.step(trail, stepName)) return undefined;
    const spec = this.spec<ServiceResolverSpec>('service-resolver', service);
    if (spec?.redirect !== undefined) {
      // The destination's own subsets apply: the caller's subset names belong to the old service.
      return this.resolve(spec.redirect.service, spec.redirect.serviceSubset, [...trail, stepName]);
    }
    const chosen = subset ?? spec?.defaultSubset;
    const def = chosen === undefined ? undefined : own(spec?.subsets, chosen);
    if (chosen !== undefined && def === undefined) {
      const defined = Object.keys(spec?.subsets ?? {}).sort();
      const known = defined.length > 0 ? `its resolver defines ${defined.join(', ')}` : 'it has no subsets';
      this.errors.push(
        `service ${service} has no subset ${chosen} (${known}), used via ${[...trail, stepName].join(' → ')}`,
      );
      return undefined;
    }
    return this.target(service, chosen, spec);
  }

  private target(
    service: string,
    subset: string | undefined,
    spec: ServiceResolverSpec | undefined,
  ): string | undefined {
    const id = targetId(service, subset);
    if (this.targets.has(id)) return id;
    if (this.targets.size >= CHAIN_LIMITS.targetsMax) {
      this.errors.push(`more than ${CHAIN_LIMITS.targetsMax} targets in one chain`);
      return undefined;
    }
    const def = subset === undefined ? undefined : own(spec?.subsets, subset);
    const t: ChainTarget = {
      id,
      service,
      onlyPassing: def?.onlyPassing ?? false,
      failover: [],
      loadBalancer: spec?.loadBalancer ?? defaultLoadBalancer(),
    };
    if (subset !== undefined) t.subset = subset;
    if (def?.filter !== undefined) t.filter = def.filter;
    if (spec?.passiveHealthCheck !== undefined) t.passiveHealthCheck = spec.passiveHealthCheck;
    if (spec?.connectTimeoutMs !== undefined) t.connectTimeoutMs = spec.connectTimeoutMs;
    if (spec?.requestTimeoutMs !== undefined) t.requestTimeoutMs = spec.requestTimeoutMs;
    this.targets.set(id, t);
    this.failoverQueue.push(t);
    return id;
  }

  /**
   * Fill in every target's failover list. Failover targets become targets too (queued in turn), so
   * each target's list is complete; the queue is bounded by targetsMax.
   */
  resolveFailover(): void {
    for (let i = 0; i < this.failoverQueue.length; i++) {
      const t = this.failoverQueue[i] as ChainTarget;
      const spec = this.spec<ServiceResolverSpec>('service-resolver', t.service);
      const policy =
        (t.subset === undefined ? undefined : own(spec?.failover, t.subset)) ??
        own(spec?.failover, FAILOVER_ANY);
      for (const f of policy?.targets ?? []) {
        const svc = f.service ?? t.service;
        const id = this.resolve(svc, f.serviceSubset, [`failover of ${t.id}`]);
        if (id !== undefined && id !== t.id && !t.failover.includes(id)) t.failover.push(id);
      }
    }
  }
}
