// The agent's data plane, composed: the proxy worker, the cluster CA (on voters) and this agent's
// leaf certificates, and the snapshot that keeps the proxy in step with the catalog, membership and
// replicated configuration. Any change to those schedules one rebuild (coalesced); a rebuild that
// changes nothing posts nothing.

import type { Logger } from 'pino';
import { type DiscoveryChainView, MeshError } from '../api/types.js';
import { LeafCerts } from '../ca/leaves.js';
import { CaManager, type CaRequest } from '../ca/manager.js';
import type { LocalServices } from '../catalog/local.js';
import type { CatalogQuery } from '../catalog/query.js';
import type { Catalog } from '../core/catalog/catalog.js';
import type { MembershipService } from '../membership/service.js';
import { ProxyHost } from '../proxy/host.js';
import { buildSnapshot, discoveryChain } from '../proxy/snapshot.js';
import type { RaftClient } from '../raft/client.js';
import type { ControlPlane } from '../raft/control-plane.js';
import type { RaftService } from '../raft/service.js';
import type { Store } from '../store/store.js';
import type { AgentConfig } from './agent-config.js';

/** Coalesce bursts of changes (a catalog sync, a batch of applies) into one snapshot. */
const REBUILD_DELAY_MS = 20;
/** A rebuild at least this often, so nothing that changed unnoticed stays stale for long. */
const REBUILD_BACKSTOP_MS = 5_000;
/** Concurrent connections per proxy listener. */
const CONNECTIONS_MAX = 16_384;

export interface DataPlaneDeps {
  config: AgentConfig;
  log: Logger;
  selfId: string;
  store: Store;
  raft: RaftService;
  controlPlane: ControlPlane;
  raftClient: RaftClient;
  membership: MembershipService;
  catalog: Catalog;
  services: LocalServices;
  query: CatalogQuery;
}

export class DataPlane {
  private deps!: DataPlaneDeps;
  private rebuildTimer: NodeJS.Timeout | undefined;
  private backstop: NodeJS.Timeout | undefined;
  private stopped = false;
  ca!: CaManager;
  leaves!: LeafCerts;

  private constructor(readonly proxy: ProxyHost) {}

  /** Start the proxy worker first: its inbound port goes into this agent's gossiped meta. */
  static async startProxy(config: AgentConfig, log: Logger): Promise<DataPlane> {
    const proxy = await ProxyHost.start({ inbound: config.inbound, connectionsMax: CONNECTIONS_MAX, log });
    return new DataPlane(proxy);
  }

  /** host:port other agents dial: the advertised host when listening on every interface. */
  inboundAdvertised(advertiseHost: string): string {
    const { host, port } = this.proxy.inbound;
    const h = host === '0.0.0.0' || host === '::' ? advertiseHost : host;
    return h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`;
  }

  async start(deps: DataPlaneDeps): Promise<void> {
    this.deps = deps;
    this.ca = new CaManager({
      selfId: deps.selfId,
      raft: deps.raft,
      controlPlane: deps.controlPlane,
      call: (to, req, timeoutMs) =>
        deps.raftClient.call(to, deps.membership.member(to)?.address ?? '', req, timeoutMs),
      catalog: deps.catalog,
      store: deps.store,
      log: deps.log.child({ module: 'ca' }),
      leafTtlMs: deps.config.caLeafTtlMs,
    });
    await this.ca.start();
    this.leaves = new LeafCerts({
      ca: this.ca,
      services: () => [...new Set(deps.services.list().map((s) => s.definition.name))],
      onChange: () => this.changed(),
      log: deps.log.child({ module: 'ca' }),
    });
    this.leaves.start();
    deps.raft.onApply(() => {
      this.changed();
      // A new CA root (first one, or a rotation) calls for certificates at once.
      this.leaves.sync();
    });
    deps.membership.onMember(() => this.changed());
    this.backstop = setInterval(() => this.changed(), REBUILD_BACKSTOP_MS);
    this.changed();
  }

  /** The discovery chain of `service` as this agent's proxy would compile it now (the API's view). */
  discoveryChain(service: string): DiscoveryChainView {
    const d = this.deps;
    if (d === undefined) throw new MeshError('unavailable', 'the data plane is still starting');
    return discoveryChain(
      {
        catalog: d.catalog,
        member: (id) => d.membership.member(id),
        selfId: d.selfId,
        state: () => d.raft.state,
        protocolOf: (name, own) => d.query.protocolOf(name, own),
      },
      service,
    );
  }

  /** The CA's part of the raft client protocol. */
  handle(req: CaRequest, from: string): Promise<unknown> {
    return this.ca.handle(req, from);
  }

  /** Something the snapshot depends on changed. */
  changed(): void {
    if (this.rebuildTimer || this.stopped || !this.deps) return;
    this.rebuildTimer = setTimeout(() => {
      this.rebuildTimer = undefined;
      this.rebuild();
    }, REBUILD_DELAY_MS);
  }

  private rebuild(): void {
    const d = this.deps;
    try {
      this.proxy.post(
        buildSnapshot({
          local: () => d.services.list(),
          catalog: d.catalog,
          member: (id) => d.membership.member(id),
          selfId: d.selfId,
          state: () => d.raft.state,
          protocolOf: (name, own) => d.query.protocolOf(name, own),
          roots: () => this.ca.roots(),
          certs: () => this.leaves.certs(),
        }),
      );
    } catch (err) {
      d.log.error(
        { err: (err as Error).message },
        'could not build the proxy snapshot; the proxy keeps the last one',
      );
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.rebuildTimer) clearTimeout(this.rebuildTimer);
    if (this.backstop) clearInterval(this.backstop);
    this.leaves?.stop();
    this.ca?.stop();
    await this.proxy.stop();
  }
}
