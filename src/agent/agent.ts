// The agent: the composition root that wires storage, identity, the libp2p host, membership and
// the local HTTP API, and implements what the API exposes. Each part starts and stops cleanly.
import { rm } from 'node:fs/promises';
import { multiaddr } from '@multiformats/multiaddr';
import type { Logger } from 'pino';
import { startHttpServer } from '../api/http-server.js';
import { catalogRoutes } from '../api/routes-catalog.js';
import { meshRoutes } from '../api/routes-mesh.js';
import { stateRoutes } from '../api/routes-state.js';
import {
  type AgentApi,
  type AgentSelfView,
  type JoinResult,
  type MemberView,
  MeshError,
} from '../api/types.js';
import { LocalServices } from '../catalog/local.js';
import { CatalogQuery } from '../catalog/query.js';
import { CatalogService } from '../catalog/service.js';
import { DEFAULT_MEMBERSHIP_CONFIG } from '../core/membership/config.js';
import type { Member, MemberStatus } from '../core/membership/types.js';
import { type DnsServer, startDnsServer } from '../dns/server.js';
import { MembershipService } from '../membership/service.js';
import { INBOUND_META_KEY } from '../proxy/snapshot.js';
import { AppliedGossip } from '../raft/applied-gossip.js';
import { isCaRequest, RaftClient } from '../raft/client.js';
import { ControlPlane } from '../raft/control-plane.js';
import { ReplicaFanout } from '../raft/replica.js';
import { RaftService } from '../raft/service.js';
import { RaftStorage } from '../raft/storage.js';
import { Store } from '../store/store.js';
import { packageVersion } from '../version.js';
import { GossipBus } from '../wire/gossip-bus.js';
import type { AgentConfig } from './agent-config.js';
import { DataPlane } from './data-plane.js';
import { createHost, formatAddress, type Host, hostPortToMultiaddr, parseAddress } from './host.js';
import { loadIdentity } from './identity.js';

export const VERSION: string = packageVersion();

export class Agent implements AgentApi {
  private httpClose: (() => Promise<void>) | undefined;
  private httpAddress = '';
  private dns: DnsServer | undefined;
  private readonly startedAt = new Date().toISOString();
  private stopping: Promise<void> | undefined;
  /** Called when the agent should exit (after `PUT /v1/agent/leave`). */
  onExit: () => void = () => undefined;

  private constructor(
    readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly store: Store,
    private readonly host: Host,
    readonly membership: MembershipService,
    readonly controlPlane: ControlPlane,
    private readonly raft: RaftService,
    private readonly raftClient: RaftClient,
    private readonly replicas: ReplicaFanout,
    private readonly applied: AppliedGossip,
    private readonly bus: GossipBus,
    readonly catalog: CatalogService,
    readonly services: LocalServices,
    readonly query: CatalogQuery,
    readonly dataPlane: DataPlane,
  ) {}

  /** `onMembershipStarted` runs as soon as gossip membership is up (the join starts there). */
  static async start(
    config: AgentConfig,
    log: Logger,
    onMembershipStarted?: (agent: Agent) => void,
  ): Promise<Agent> {
    const store = await Store.open(config.dataDir);
    let dataPlane: DataPlane | undefined;
    try {
      const identity = await loadIdentity(store, config.nodeName, log.child({ module: 'identity' }));
      const host = await createHost({
        privateKey: identity.privateKey,
        bind: config.bind,
        advertise: config.advertise,
        clusterKey: config.clusterKey,
        connectionsMax: 128,
      });
      await host.start();
      // With port 0 the kernel picked the port: advertise the one we actually got.
      const advertise = { ...config.advertise };
      if (advertise.port === 0) advertise.port = boundPort(host) ?? 0;
      // The proxy first: its inbound port is part of what this agent gossips about itself.
      dataPlane = await DataPlane.startProxy(config, log.child({ module: 'proxy' }));
      const bus = new GossipBus(host, log.child({ module: 'gossip' }));
      const membership = new MembershipService({
        host,
        bus,
        self: {
          id: identity.id,
          name: config.nodeName,
          address: formatAddress(advertise),
          zone: config.zone,
          meta: { [INBOUND_META_KEY]: dataPlane.inboundAdvertised(advertise.host) },
        },
        incarnation: identity.incarnation,
        config: DEFAULT_MEMBERSHIP_CONFIG,
        log: log.child({ module: 'membership' }),
        peersTarget: 6,
        joinTimeoutMs: 5_000,
      });
      const raftLog = log.child({ module: 'raft' });
      const storage = new RaftStorage(store);
      const addressOf = (id: string): string => membership.member(id)?.address ?? '';
      const raft = new RaftService({
        id: identity.id,
        host,
        storage,
        log: raftLog,
        addressOf,
        tickMs: 50,
        snapshotEveryEntries: 10_000,
        proposeTimeoutMs: 5_000,
      });
      const applied = new AppliedGossip(bus, identity.id, raft);
      let controlPlane: ControlPlane | undefined;
      const raftClient = new RaftClient(
        host,
        (req, from) => {
          if (!controlPlane) return Promise.reject(new MeshError('unavailable', 'raft is starting'));
          if (isCaRequest(req)) return (dataPlane as DataPlane).handle(req, from);
          return controlPlane.handleForwarded(req);
        },
        raftLog,
      );
      controlPlane = new ControlPlane({
        selfId: identity.id,
        raft,
        client: raftClient,
        storage,
        membership,
        log: raftLog,
        bootstrap: config.bootstrap,
        bootstrapExpect: config.bootstrapExpect,
        voters: config.voters,
        deadVoterMs: 5_000,
        forwardTimeoutMs: 5_000,
        applied,
      });
      // Recomputed at most twice a second: it walks the member table, and it is asked per commit.
      let replicasCache = { value: true, atMs: -Infinity };
      const hasReplicas = (): boolean => {
        const now = performance.now();
        if (now - replicasCache.atMs < 500) return replicasCache.value;
        const conf = raft.status().conf;
        const inConf = new Set([...conf.voters, ...conf.learners]);
        const value = membership.members().some((m) => m.status === 'alive' && !inConf.has(m.id));
        replicasCache = { value, atMs: now };
        return value;
      };
      const replicas = new ReplicaFanout(bus, raft, raftClient, addressOf, raftLog, hasReplicas);
      const catalogLog = log.child({ module: 'catalog' });
      const catalog = await CatalogService.create({
        selfId: identity.id,
        host,
        bus,
        membership,
        store,
        log: catalogLog,
      });
      const services = new LocalServices({
        store,
        log: log.child({ module: 'services' }),
        configDir: config.configDir,
        enableScriptChecks: config.enableScriptChecks,
        onChange: (instances) => {
          catalog.setLocal(instances);
          dataPlane?.changed();
          dataPlane?.leaves?.sync();
        },
      });
      const query = new CatalogQuery({
        catalog: catalog.core,
        member: (id) => membership.member(id),
        members: () => membership.members(),
        state: () => raft.state,
        local: services,
      });
      const agent = new Agent(
        config,
        log.child({ module: 'agent' }),
        store,
        host,
        membership,
        controlPlane,
        raft,
        raftClient,
        replicas,
        applied,
        bus,
        catalog,
        services,
        query,
        dataPlane,
      );
      membership.onMember((ev) => agent.logMemberEvent(ev.member, ev.previous));
      bus.start();
      await membership.start();
      onMembershipStarted?.(agent);
      await raftClient.start();
      await controlPlane.start();
      replicas.start();
      applied.start();
      await catalog.start();
      // A bad service file stops the start here, naming the file and the field.
      await services.start();
      await dataPlane.start({
        config,
        log,
        selfId: identity.id,
        store,
        raft,
        controlPlane,
        raftClient,
        membership,
        catalog: catalog.core,
        services,
        query,
      });
      catalog.onChange(() => dataPlane?.changed());
      if (config.dns !== 'off') {
        agent.dns = await startDnsServer({
          host: config.dns.host,
          port: config.dns.port,
          catalog: query,
          log: log.child({ module: 'dns' }),
        });
      }
      const http = await startHttpServer({
        agent,
        host: config.http.host,
        port: config.http.port,
        log: log.child({ module: 'http' }),
        onLeave: () => agent.onExit(),
        routes: [
          ...stateRoutes(controlPlane),
          ...catalogRoutes({ catalog, query, local: services }),
          ...meshRoutes(dataPlane, controlPlane),
        ],
      });
      agent.httpClose = http.close;
      agent.httpAddress = formatAddress(http.address);
      agent.log.info(
        {
          id: identity.id,
          name: config.nodeName,
          cluster: formatAddress(advertise),
          http: agent.httpAddress,
          dns: agent.dns ? formatAddress(agent.dns.address) : 'off',
          multiaddrs: host.getMultiaddrs().map(String),
          newIdentity: identity.created,
          incarnation: identity.incarnation,
          dataDir: config.dataDir,
        },
        'agent started',
      );
      return agent;
    } catch (err) {
      await dataPlane?.stop().catch(() => undefined);
      await store.close().catch(() => undefined);
      throw err;
    }
  }

  self(): AgentSelfView {
    const me = this.membership.self();
    const counts: Record<MemberStatus, number> = { alive: 0, suspect: 0, failed: 0, left: 0 };
    for (const m of this.membership.members()) counts[m.status]++;
    return {
      name: me.name,
      id: me.id,
      address: me.address,
      multiaddrs: this.host.getMultiaddrs().map(String),
      http: this.httpAddress,
      dns: this.dns ? formatAddress(this.dns.address) : 'off',
      zone: me.zone,
      status: me.status,
      incarnation: me.incarnation,
      version: VERSION,
      dataDir: this.config.dataDir,
      localHealth: this.membership.localHealth(),
      members: counts,
      stats: {
        ...this.membership.stats(),
        gossipMessages: this.bus.counters.received,
        gossipDropped: this.bus.counters.malformed,
        publishFailed: this.bus.counters.publishFailed,
        catalogInstances: this.catalog.core.instanceCount(),
        catalogNodes: this.catalog.core.nodes().length,
        ...catalogCounters(this.catalog),
        ...(this.dns ? prefixed('dns', this.dns.stats) : {}),
      },
      memory: { ...process.memoryUsage() },
      connections: this.host.getConnections().length,
      startedAt: this.startedAt,
    };
  }

  members(): MemberView[] {
    return this.membership.members().map(toView);
  }

  async join(addresses: string[], signal?: AbortSignal): Promise<JoinResult> {
    const result: JoinResult = { joined: 0, errors: [] };
    await Promise.all(
      addresses.map(async (address) => {
        try {
          await this.membership.join(toMultiaddr(address), signal);
          result.joined++;
        } catch (err) {
          result.errors.push({ address, message: (err as Error).message });
        }
      }),
    );
    if (result.joined === 0) {
      const reasons = result.errors.map((e) => `${e.address}: ${e.message}`).join('; ');
      throw new MeshError('join_failed', `could not join any of ${addresses.length} address(es): ${reasons}`);
    }
    this.log.info({ joined: result.joined, addresses }, 'joined the cluster');
    return result;
  }

  async leave(): Promise<void> {
    await this.stop({ leave: true });
  }

  /** Stop everything; with `leave` first tell the cluster this node is leaving. Idempotent. */
  stop(opts: { leave: boolean }): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop(opts.leave);
    return this.stopping;
  }

  private async doStop(leave: boolean): Promise<void> {
    if (leave) {
      this.log.info('leaving the cluster');
      // A voter hands over leadership and removes itself first, so the voters keep a quorum.
      await withTimeout(this.controlPlane.leave(), this.config.leaveTimeoutMs);
      // Enough for the leave to reach the gossip mesh and the direct fanout, bounded by config.
      await this.membership.leave(Math.min(this.config.leaveTimeoutMs, 500)).catch((err: Error) => {
        this.log.warn({ err: err.message }, 'leave did not complete');
      });
    }
    await this.httpClose?.().catch(() => undefined);
    await this.dns?.close().catch(() => undefined);
    await this.dataPlane.stop().catch(() => undefined);
    this.services.stop();
    await this.catalog.stop().catch(() => undefined);
    this.replicas.stop();
    this.applied.stop();
    await this.controlPlane.stop().catch(() => undefined);
    await this.raftClient.stop().catch(() => undefined);
    await this.raft.stop().catch(() => undefined);
    await this.membership.stop().catch(() => undefined);
    this.bus.stop();
    await Promise.resolve(this.host.stop()).catch(() => undefined);
    await this.store.close().catch(() => undefined);
    if (this.config.dataDirIsTemporary) await rm(this.config.dataDir, { recursive: true, force: true });
    this.log.info({ left: leave }, 'agent stopped');
  }

  private logMemberEvent(m: Member, previous: MemberStatus | undefined): void {
    // One line per status change; benchmarks and operators key on this message.
    this.log.info(
      {
        member: m.name,
        id: m.id,
        address: m.address,
        status: m.status,
        previous,
        incarnation: m.incarnation,
      },
      'member status changed',
    );
  }
}

function prefixed(prefix: string, counters: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(counters)) out[`${prefix}${k[0]!.toUpperCase()}${k.slice(1)}`] = v;
  return out;
}

function catalogCounters(c: CatalogService): Record<string, number> {
  const { catalogTransport: _t, ...rest } = c.stats();
  return prefixed('catalog', rest);
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    p.catch(() => undefined).finally(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

function toView(m: Member): MemberView {
  return {
    name: m.name,
    id: m.id,
    address: m.address,
    status: m.status,
    incarnation: m.incarnation,
    zone: m.zone,
    meta: m.meta,
  };
}

function boundPort(host: Host): number | undefined {
  for (const ma of host.getMultiaddrs()) {
    const parts = ma.toString().split('/');
    if (parts[3] === 'tcp') return Number(parts[4]);
  }
  return undefined;
}

/** host:port, [v6]:port, dns:port or a multiaddr → a dialable multiaddr. */
export function toMultiaddr(address: string) {
  if (address.startsWith('/')) {
    try {
      return multiaddr(address);
    } catch (err) {
      throw new MeshError('bad_request', `"${address}" is not a valid multiaddr: ${(err as Error).message}`);
    }
  }
  const hp = parseAddress(address);
  if (!hp) throw new MeshError('bad_request', `"${address}" is not HOST:PORT or a multiaddr`);
  return hostPortToMultiaddr(hp);
}
