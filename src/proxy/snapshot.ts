// Build the proxy's snapshot from what this agent already holds: its local services (upstreams to
// listen for, instances to forward to), the gossiped catalog and membership (every instance of
// every destination, its health, its agent's inbound address), the replicated configuration
// (routing chains, intentions, defaults, CA roots) and this agent's leaf certificates.

import type { DiscoveryChainView } from '../api/types.js';
import type { LocalService } from '../catalog/local.js';
import type { Catalog } from '../core/catalog/catalog.js';
import { ANY_SERVICE } from '../core/catalog/definition.js';
import { instanceHealth, instanceWeight, isHealthy } from '../core/catalog/health.js';
import type { Member } from '../core/membership/types.js';
import { compileChain } from '../core/routing/chain.js';
import type { InstanceRateLimits, RouteRateLimit } from '../core/routing/rate-limit.js';
import { inSubset } from '../core/routing/route.js';
import type { CompiledChain } from '../core/routing/types.js';
import type { CaRootsSpec } from '../core/state/kinds/ca-roots.js';
import type { Protocol } from '../core/state/kinds/fields.js';
import type { RateLimitsSpec } from '../core/state/kinds/rate-limits.js';
import { upstreamLimitsFor } from '../core/state/kinds/upstream-config.js';
import type { StateMachine } from '../core/state/state-machine.js';
import { REQUEST_TIMEOUT_MS_DEFAULT } from './routing.js';
import type { ProxyCert, ProxyEndpoint, ProxyLocalInstance, ProxySnapshot, ProxyUpstream } from './types.js';

/** The member meta key under which an agent gossips its inbound listener's host:port. */
export const INBOUND_META_KEY = 'inbound';
const CONNECT_TIMEOUT_MS_DEFAULT = 5_000;

export interface SnapshotSources {
  local: () => LocalService[];
  catalog: Catalog;
  member: (id: string) => Member | undefined;
  /** This agent's node id: its own instances are called directly. */
  selfId: string;
  state: () => StateMachine;
  protocolOf: (service: string, own: string | undefined) => string;
  roots: () => CaRootsSpec | undefined;
  certs: () => Record<string, ProxyCert>;
}

function numberField(spec: unknown, key: string): number | undefined {
  const v = typeof spec === 'object' && spec !== null ? (spec as Record<string, unknown>)[key] : undefined;
  return typeof v === 'number' ? v : undefined;
}

/** The protocol the destination's instances declare (the first that declares one), as the catalog API shows it. */
export function declaredProtocol(catalog: Catalog, service: string): string | undefined {
  for (const p of catalog.placed(service)) if (p.instance.protocol !== undefined) return p.instance.protocol;
  return undefined;
}

/** Kinds whose entries name a service that calls may address, though it may have no instance of its own. */
const SERVICE_ENTRY_KINDS = ['service-defaults', 'service-router', 'service-splitter', 'service-resolver'];

/**
 * Every name an upstream could name: services with instances, and services that exist only in
 * configuration (a router, a splitter or a resolver's redirect in front of others).
 */
function callableNames(catalog: Catalog, sm: StateMachine): Set<string> {
  const names = new Set(catalog.serviceNames());
  for (const kind of SERVICE_ENTRY_KINDS) for (const e of sm.configList(kind)) names.add(e.name);
  return names;
}

export function buildSnapshot(src: SnapshotSources): ProxySnapshot {
  const sm = src.state();
  const lookup = (kind: string, name: string): unknown => sm.configGet(kind, name)?.spec;
  const roots = src.roots();
  const local = src.local().map((l) => l.definition);

  const upstreams: ProxyUpstream[] = [];
  const chains: Record<string, CompiledChain> = {};
  const upstreamConfigs: Record<string, unknown> = {};
  let anyService = false;
  for (const d of local) {
    const upstreamConfig = (
      sm.configGet('service-defaults', d.name)?.spec as { upstreamConfig?: unknown } | undefined
    )?.upstreamConfig;
    for (const u of d.upstreams) {
      // For the HTTP proxy port, the defaults (no override can be named "*").
      const limits = upstreamLimitsFor(upstreamConfig, u.service);
      if (u.service === ANY_SERVICE) {
        upstreams.push({
          source: d.name,
          destination: ANY_SERVICE,
          bindHost: '127.0.0.1',
          port: u.localPort,
          protocol: 'http',
          ...(limits !== undefined ? { limits } : {}),
        });
        if (upstreamConfig !== undefined) upstreamConfigs[d.name] = upstreamConfig;
        anyService = true;
        continue;
      }
      const protocol = src.protocolOf(u.service, declaredProtocol(src.catalog, u.service)) as Protocol;
      upstreams.push({
        source: d.name,
        destination: u.service,
        bindHost: '127.0.0.1',
        port: u.localPort,
        protocol,
        ...(limits !== undefined ? { limits } : {}),
      });
      if (!Object.hasOwn(chains, u.service)) chains[u.service] = compileChain(lookup, u.service, protocol);
    }
  }

  // An HTTP proxy port may name any service: every service in the catalog gets a chain, HTTP/1.1
  // ones for requests by Host, the others for CONNECT tunnels (connect-tunnel.ts). The snapshot
  // then grows with the catalog, so only agents with such a port pay for it.
  if (anyService)
    for (const name of callableNames(src.catalog, sm)) {
      if (Object.hasOwn(chains, name)) continue;
      const protocol = src.protocolOf(name, declaredProtocol(src.catalog, name)) as Protocol;
      chains[name] = compileChain(lookup, name, protocol);
    }

  const endpoints: Record<string, ProxyEndpoint[]> = {};
  for (const chain of Object.values(chains)) {
    for (const t of chain.targets) {
      if (!Object.hasOwn(endpoints, t.service)) endpoints[t.service] = endpointsOf(src, t.service);
    }
  }

  const localInstances: ProxyLocalInstance[] = local.map((d) => {
    const defaults = sm.configGet('service-defaults', d.name)?.spec;
    const connectionsMax = numberField(defaults, 'maxConnections');
    const protocol = src.protocolOf(d.name, d.protocol) as Protocol;
    const rateLimits = protocol === 'tcp' ? undefined : rateLimitsOf(defaults);
    return {
      id: d.id,
      service: d.name,
      host: d.address === '' ? '127.0.0.1' : d.address,
      port: d.port,
      protocol,
      requestTimeoutMs: numberField(defaults, 'localRequestTimeoutMs') ?? REQUEST_TIMEOUT_MS_DEFAULT,
      connectTimeoutMs: numberField(defaults, 'connectTimeoutMs') ?? CONNECT_TIMEOUT_MS_DEFAULT,
      ...(connectionsMax !== undefined ? { connectionsMax } : {}),
      ...(rateLimits !== undefined ? { rateLimits } : {}),
    };
  });

  const intentions: Record<string, unknown> = {};
  for (const e of sm.configList('service-intentions')) intentions[e.name] = e.spec;
  const proxyConfig = (lookup('proxy-defaults', 'global') as { config?: Record<string, unknown> } | undefined)
    ?.config;

  return {
    version: { raft: sm.appliedIndex, catalog: src.catalog.index },
    trustDomain: roots?.trustDomain ?? '',
    roots: roots?.roots.map((r) => r.certPem) ?? [],
    certs: src.certs(),
    upstreams,
    chains,
    endpoints,
    local: localInstances,
    intentions,
    mesh: lookup('mesh', 'global'),
    accessLogs: proxyConfig?.accessLogs === true,
    ...(Object.keys(upstreamConfigs).length > 0 ? { upstreamConfigs } : {}),
  };
}

/**
 * The instances of `service` a proxy can call: those whose agent announces an inbound listener and
 * has not left, with their health. Sorted, so the same catalog gives the same snapshot (and the
 * balancers the same order).
 */
export function endpointsOf(
  src: Pick<SnapshotSources, 'catalog' | 'member' | 'selfId'>,
  service: string,
): ProxyEndpoint[] {
  const list: ProxyEndpoint[] = [];
  for (const p of src.catalog.placed(service)) {
    const m = src.member(p.node);
    const inbound = m?.meta[INBOUND_META_KEY];
    if (!m || !inbound || m.status === 'left') continue;
    const health = instanceHealth(p.instance, m.status);
    // A weight of 0 (a warning instance whose warning weight is 0) takes no calls, as in Consul.
    const weight = instanceWeight(p.instance, health);
    list.push({
      id: `${p.node}/${p.instance.id}`,
      instanceId: p.instance.id,
      service,
      inbound,
      local: p.node === src.selfId,
      healthy: isHealthy(health) && weight > 0,
      passing: health === 'passing',
      tags: p.instance.tags,
      meta: p.instance.meta,
      ...(weight > 1 ? { weight } : {}),
    });
  }
  return list.sort((a, b) => (a.id < b.id ? -1 : 1));
}

/**
 * The discovery chain of `service` as this agent's proxy compiles it (the protocol in effect, the
 * configuration entries it holds), with each target's instances: how many the proxy knows and how
 * many may take calls now (health and subset; passive-health ejections are the proxy's and not
 * counted). For `GET /v1/discovery-chain/<service>`.
 */
export function discoveryChain(
  src: Pick<SnapshotSources, 'catalog' | 'member' | 'selfId' | 'state' | 'protocolOf'>,
  service: string,
): DiscoveryChainView {
  const sm = src.state();
  const lookup = (kind: string, name: string): unknown => sm.configGet(kind, name)?.spec;
  const protocol = src.protocolOf(service, declaredProtocol(src.catalog, service)) as Protocol;
  const chain = compileChain(lookup, service, protocol);
  const instances: DiscoveryChainView['instances'] = {};
  const byService = new Map<string, ProxyEndpoint[]>();
  for (const t of chain.targets) {
    let all = byService.get(t.service);
    if (all === undefined) {
      all = endpointsOf(src, t.service);
      byService.set(t.service, all);
    }
    const inTarget = all.filter((e) => inSubset(t, e));
    instances[t.id] = {
      total: inTarget.length,
      healthy: inTarget.filter((e) => (t.onlyPassing ? e.passing : e.healthy)).length,
    };
  }
  return { index: sm.appliedIndex, chain, instances };
}

/**
 * A service-defaults entry's rate limits as the proxy applies them (read leniently: the entry was
 * validated when written); a burst defaults to the rate. Undefined when it sets none.
 */
export function rateLimitsOf(defaults: unknown): InstanceRateLimits | undefined {
  const il = (defaults as { rateLimits?: RateLimitsSpec } | undefined)?.rateLimits?.instanceLevel;
  if (il === undefined) return undefined;
  const rate = (r: { requestsPerSecond?: number; requestsMaxBurst?: number }) =>
    typeof r.requestsPerSecond === 'number'
      ? {
          requestsPerSecond: r.requestsPerSecond,
          requestsMaxBurst: r.requestsMaxBurst ?? r.requestsPerSecond,
        }
      : undefined;
  const routes: RouteRateLimit[] = [];
  for (const r of il.routes ?? []) {
    const limit = rate(r);
    if (limit === undefined) continue;
    const match =
      r.pathExact !== undefined
        ? { pathExact: r.pathExact }
        : r.pathPrefix !== undefined
          ? { pathPrefix: r.pathPrefix }
          : r.pathRegex !== undefined
            ? { pathRegex: r.pathRegex }
            : undefined;
    if (match !== undefined) routes.push({ ...limit, match });
  }
  const instance = rate(il);
  if (instance === undefined && routes.length === 0) return undefined;
  return { ...(instance !== undefined ? { instance } : {}), routes };
}
