// Answers about the catalog, from this agent's memory only: the instances gossip brought, the
// health of their agents from membership, and service-defaults / proxy-defaults from the
// replicated configuration (for the protocol). Shared by the HTTP API and the DNS server.

import { parseAddress } from '../agent/host.js';
import type {
  CatalogServiceView,
  CheckView,
  InstanceView,
  LocalServiceView,
  NodeView,
} from '../api/types.js';
import type { Catalog, Placed } from '../core/catalog/catalog.js';
import {
  AGENT_CHECK_ID,
  agentCheckStatus,
  instanceHealth,
  instanceWeight,
  isHealthy,
} from '../core/catalog/health.js';
import { type CheckState, type CheckStatus, type Instance, worstStatus } from '../core/catalog/types.js';
import type { Member } from '../core/membership/types.js';
import { DEFAULT_PROTOCOL, PROXY_DEFAULTS_NAME } from '../core/state/index.js';
import type { StateMachine } from '../core/state/state-machine.js';
import type { DnsCatalog, DnsInstance } from '../dns/server.js';
import type { LocalServices } from './local.js';

export interface CatalogQueryInit {
  catalog: Catalog;
  member: (id: string) => Member | undefined;
  members: () => Member[];
  /** The replicated configuration, for service-defaults and proxy-defaults. */
  state: () => StateMachine;
  local: LocalServices;
}

/** The host part of a member's cluster address ("host:port" / "[v6]:port"). */
function hostOf(address: string): string {
  return parseAddress(address)?.host ?? address;
}

function specProtocol(spec: unknown): unknown {
  return typeof spec === 'object' && spec !== null ? (spec as { protocol?: unknown }).protocol : undefined;
}

function checkView(c: CheckState, serviceId: string): CheckView {
  return { id: c.id, name: c.name, type: c.type, status: c.status, output: c.output, serviceId };
}

export class CatalogQuery implements DnsCatalog {
  constructor(private readonly init: CatalogQueryInit) {}

  /** The protocol in effect for a service: its own, else service-defaults, else proxy-defaults, else tcp. */
  protocolOf(name: string, own: string | undefined): string {
    if (own !== undefined) return own;
    const sm = this.init.state();
    const fromService = specProtocol(sm.configGet('service-defaults', name)?.spec);
    if (typeof fromService === 'string') return fromService;
    const fromProxy = specProtocol(sm.configGet('proxy-defaults', PROXY_DEFAULTS_NAME)?.spec);
    return typeof fromProxy === 'string' ? fromProxy : DEFAULT_PROTOCOL;
  }

  /** Index for blocking queries on one service (changes of its instances or of their agents' health). */
  serviceIndex(name: string): number {
    return this.init.catalog.serviceIndex(name);
  }

  index(): number {
    return this.init.catalog.index;
  }

  services(): CatalogServiceView[] {
    const out: CatalogServiceView[] = [];
    for (const name of this.init.catalog.serviceNames()) {
      const tags = new Set<string>();
      const counts: Record<CheckStatus, number> = { passing: 0, warning: 0, critical: 0 };
      let own: string | undefined;
      let shown = 0;
      for (const p of this.init.catalog.placed(name)) {
        // Counted as `instances()` lists them: not those of agents that left or are unknown.
        if (this.hidden(p)) continue;
        shown++;
        for (const t of p.instance.tags) tags.add(t);
        counts[instanceHealth(p.instance, this.init.member(p.node)?.status)]++;
        own ??= p.instance.protocol;
      }
      if (shown === 0) continue;
      out.push({
        name,
        tags: [...tags].sort(),
        protocol: this.protocolOf(name, own),
        instances: shown,
        ...counts,
      });
    }
    return out;
  }

  /** Every instance of a service; `healthy` keeps passing and warning ones; `tag` filters. */
  instances(
    name: string,
    opts: { healthy?: boolean; passingOnly?: boolean; tag?: string } = {},
  ): InstanceView[] {
    const out: InstanceView[] = [];
    for (const p of this.init.catalog.instances(name)) {
      if (this.hidden(p)) continue;
      if (opts.tag !== undefined && !p.instance.tags.includes(opts.tag)) continue;
      const view = this.instanceView(p);
      if (opts.passingOnly && view.health !== 'passing') continue;
      if (opts.healthy && !isHealthy(view.health)) continue;
      out.push(view);
    }
    return out;
  }

  nodes(): NodeView[] {
    return this.init.members().map((m) => {
      const counts: Record<CheckStatus, number> = { passing: 0, warning: 0, critical: 0 };
      const instances = this.init.catalog.nodeInstances(m.id);
      for (const i of instances) counts[instanceHealth(i, m.status)]++;
      return {
        name: m.name,
        id: m.id,
        address: m.address,
        zone: m.zone,
        status: m.status,
        services: instances.length,
        ...counts,
      };
    });
  }

  /** This agent's own services with their definitions and live check states. */
  localServices(): LocalServiceView[] {
    const live = new Map(this.init.local.instances().map((i) => [i.id, i]));
    return this.init.local.list().flatMap(({ definition: d, source, file }) => {
      const i = live.get(d.id);
      if (!i) return [];
      const checks = i.checks.map((c) => checkView(c, d.id));
      return [
        {
          id: i.id,
          name: i.name,
          address: i.address,
          port: i.port,
          tags: i.tags,
          meta: i.meta,
          protocol: this.protocolOf(d.name, d.protocol),
          upstreams: d.upstreams,
          source,
          ...(file !== undefined ? { file } : {}),
          health: checks.reduce<CheckStatus>((h, c) => worstStatus(h, c.status), 'passing'),
          checks,
        },
      ];
    });
  }

  /** Checks of this agent's services. */
  localChecks(): CheckView[] {
    const owner = new Map<string, string>();
    for (const s of this.init.local.list())
      for (const c of s.definition.checks) owner.set(c.id, s.definition.id);
    return this.init.local.checks().map((c) => checkView(c, owner.get(c.id) ?? ''));
  }

  // --- DnsCatalog ---

  healthyInstances(service: string, tag: string | undefined): DnsInstance[] | undefined {
    let known = false;
    const out: DnsInstance[] = [];
    for (const p of this.init.catalog.placed(service)) {
      if (this.hidden(p)) continue;
      known = true;
      if (tag !== undefined && !p.instance.tags.some((t) => t.toLowerCase() === tag.toLowerCase())) continue;
      const member = this.init.member(p.node);
      const health = instanceHealth(p.instance, member?.status);
      if (!isHealthy(health)) continue;
      out.push({
        node: member?.name ?? p.node,
        address: this.addressOf(p.instance, member),
        port: p.instance.port,
        // SRV's weight, as Consul gives it; 0 is valid there (RFC 2782: picked only when no other is).
        weight: instanceWeight(p.instance, health),
      });
    }
    return known ? out : undefined;
  }

  node(name: string): { name: string; address: string } | undefined {
    const lower = name.toLowerCase();
    const m = this.init
      .members()
      .find((x) => x.name.toLowerCase() === lower && (x.status === 'alive' || x.status === 'suspect'));
    return m ? { name: m.name, address: hostOf(m.address) } : undefined;
  }

  // --- Internals ---

  /** Instances of agents that left, or that membership does not know, are not shown. */
  private hidden(p: Placed): boolean {
    const s = this.init.member(p.node)?.status;
    return s === undefined || s === 'left';
  }

  private addressOf(i: Instance, member: Member | undefined): string {
    return i.address !== '' ? i.address : member ? hostOf(member.address) : '';
  }

  private instanceView(p: Placed): InstanceView {
    const member = this.init.member(p.node);
    const status = member?.status;
    const i = p.instance;
    const agentCheck: CheckView = {
      id: AGENT_CHECK_ID,
      name: 'Mesh agent (gossip health)',
      type: 'agent',
      status: agentCheckStatus(status),
      output:
        status === 'alive' || status === 'suspect' ? `agent is ${status}` : `agent is ${status ?? 'unknown'}`,
      serviceId: '',
    };
    return {
      node: member?.name ?? p.node,
      nodeId: p.node,
      nodeAddress: member?.address ?? '',
      nodeStatus: status ?? 'unknown',
      id: i.id,
      name: i.name,
      address: this.addressOf(i, member),
      port: i.port,
      tags: i.tags,
      meta: i.meta,
      protocol: this.protocolOf(i.name, i.protocol),
      health: instanceHealth(i, status),
      weights: { passing: i.weights?.passing ?? 1, warning: i.weights?.warning ?? 1 },
      checks: [agentCheck, ...i.checks.map((c) => checkView(c, i.id))],
    };
  }
}
