// Drives the pure catalog core: publishes this agent's changes on the gossip topic ('catalog'
// messages), feeds it deltas from others, carries its point-to-point messages (pulls and
// anti-entropy) over /mesh/catalog/1.0.0, runs anti-entropy with a random live member, and wakes
// blocking queries on every change.
import type { Logger } from 'pino';
import type { Host } from '../agent/host.js';
import { Watchers } from '../api/watchers.js';
import { Catalog, GENERATION_MAX } from '../core/catalog/catalog.js';
import type { Instance } from '../core/catalog/types.js';
import {
  type CatalogMessage,
  deltaToWire,
  messageToWire,
  parseCatalogMessage,
  parseDelta,
} from '../core/catalog/wire.js';
import { pushPullScaleMs } from '../core/membership/config.js';
import type { Member } from '../core/membership/types.js';
import type { MembershipService } from '../membership/service.js';
import type { Store } from '../store/store.js';
import { KEYS } from '../store/store.js';
import { DecodeError, decode } from '../wire/codec.js';
import type { GossipBus } from '../wire/gossip-bus.js';
import { StreamTransport } from '../wire/stream-transport.js';

export const CATALOG_PROTOCOL = '/mesh/catalog/1.0.0';

export interface CatalogServiceInit {
  selfId: string;
  host: Host;
  bus: GossipBus;
  membership: MembershipService;
  store: Store;
  log: Logger;
  /**
   * Anti-entropy period with one random live member, scaled like membership's push-pull above 32
   * agents. It only repairs what gossip lost, so it can be slow: 10 s.
   */
  syncIntervalMs?: number;
}

const SYNC_INTERVAL_MS = 10_000;
/**
 * Local changes are published at most once per this window: the first change after a quiet spell
 * goes out at once (a check flip is not delayed), and a burst (parallel registrations from a deploy
 * script, many checks changing together) becomes one delta per window instead of one per change.
 * Every gossip message costs every agent about 1 ms of CPU (decrypt, decode, forward), so fewer,
 * larger messages are cheaper for the whole cluster.
 */
const PUBLISH_WINDOW_MS = 50;
/** Records of departed agents are dropped on this period. */
const PRUNE_INTERVAL_MS = 5_000;

const clock = (): number => Math.floor(performance.now());

export class CatalogService {
  readonly core: Catalog;
  private readonly transport: StreamTransport;
  private readonly watchers = new Watchers();
  private readonly changeListeners: Array<() => void> = [];
  private syncTimer: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private publishTimer: NodeJS.Timeout | undefined;
  private pendingLocal: readonly Instance[] | undefined;
  private lastPublishAtMs = -Infinity;
  private stopped = false;
  readonly counters = { gossipMalformed: 0, messagesMalformed: 0, published: 0 };

  private constructor(
    private readonly init: CatalogServiceInit,
    generation: number,
  ) {
    this.core = new Catalog(init.selfId, generation);
    this.transport = new StreamTransport(
      CATALOG_PROTOCOL,
      init.host,
      (from, frame) => this.onFrame(from, frame),
      init.log,
    );
  }

  /** Reads and bumps the persisted generation, so this run's versions are above the last run's. */
  static async create(init: CatalogServiceInit): Promise<CatalogService> {
    const raw = await init.store.getString(KEYS.catalogGeneration);
    const last = raw === undefined ? -1 : Number(raw);
    const generation = Number.isSafeInteger(last) && last >= 0 ? last + 1 : 0;
    if (generation > GENERATION_MAX) throw new Error('catalog generation exhausted; remove the data dir');
    await init.store.put(KEYS.catalogGeneration, String(generation));
    return new CatalogService(init, generation);
  }

  async start(): Promise<void> {
    await this.transport.start();
    this.init.bus.on('catalog', (_from, payload) => this.onGossip(payload));
    this.init.membership.onMember((ev) => this.onMember(ev.member, ev.previous));
    this.scheduleSync();
    this.pruneTimer = setInterval(() => {
      this.core.prune((id) => this.init.membership.member(id)?.status, clock());
      this.flush();
    }, PRUNE_INTERVAL_MS);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    if (this.publishTimer) clearTimeout(this.publishTimer);
    this.watchers.releaseAll();
    await this.transport.stop();
  }

  /** This agent's instances changed: record them and publish what changed (see PUBLISH_WINDOW_MS). */
  setLocal(instances: readonly Instance[]): void {
    if (this.stopped) return;
    this.pendingLocal = instances;
    if (this.publishTimer) return;
    const waitMs = this.lastPublishAtMs + PUBLISH_WINDOW_MS - clock();
    if (waitMs <= 0) this.publishLocal();
    else this.publishTimer = setTimeout(() => this.publishLocal(), waitMs);
  }

  private publishLocal(): void {
    this.publishTimer = undefined;
    const instances = this.pendingLocal;
    this.pendingLocal = undefined;
    if (!instances || this.stopped) return;
    this.lastPublishAtMs = clock();
    const delta = this.core.setLocal(instances);
    if (!delta) return;
    this.counters.published++;
    this.init.bus.publish('catalog', deltaToWire(delta));
    this.flush();
  }

  /** Blocking query over catalog data (see src/api/watchers.ts). */
  watch(indexOf: () => number, minIndex: number, waitMs: number, signal: AbortSignal): Promise<void> {
    return this.watchers.watch(indexOf, minIndex, waitMs, signal);
  }

  stats() {
    return { ...this.core.stats, ...this.counters, catalogTransport: { ...this.transport.stats } };
  }

  private onMember(m: Member, previous: string | undefined): void {
    if (m.id === this.init.selfId || this.stopped) return;
    if (m.status === 'left') this.core.removeNode(m.id);
    else if (previous !== m.status) this.core.touchNode(m.id);
    // A newcomer: exchange catalogs with it now rather than wait for the next anti-entropy round.
    if (previous === undefined && m.status === 'alive') this.core.syncWith(m.id);
    this.flush();
  }

  private onGossip(payload: unknown): void {
    if (this.stopped) return;
    const delta = parseDelta(payload);
    if (typeof delta === 'string') {
      this.counters.gossipMalformed++;
      this.init.log.debug({ reason: delta }, 'malformed catalog gossip dropped');
      return;
    }
    this.core.receiveDelta(delta, clock());
    this.flush();
  }

  private onFrame(from: string, frame: Uint8Array): void {
    if (this.stopped) return;
    const value = decode(frame);
    const msg = value instanceof DecodeError ? `msgpack: ${value.message}` : parseCatalogMessage(value);
    if (typeof msg === 'string') {
      this.counters.messagesMalformed++;
      this.init.log.debug({ from, reason: msg }, 'malformed catalog message dropped');
      return;
    }
    this.core.receive(from, msg);
    this.flush();
  }

  /** Send what the core queued and wake blocking queries. */
  private flush(): void {
    for (const o of this.core.drain()) {
      const address = this.init.membership.member(o.to)?.address ?? '';
      this.transport.send(o.to, address, messageToWire(o.msg) as CatalogMessage);
    }
    this.watchers.notify();
    for (const l of this.changeListeners) l();
  }

  /** Called after every batch of catalog messages (the proxy rebuilds its view when it changed). */
  onChange(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  private scheduleSync(): void {
    if (this.stopped) return;
    const live = this.init.membership.members().filter((m) => m.status === 'alive');
    const period = pushPullScaleMs(this.init.syncIntervalMs ?? SYNC_INTERVAL_MS, live.length);
    // Jittered so agents started together do not exchange in lockstep.
    const delayMs = Math.floor(period / 2 + Math.random() * period);
    this.syncTimer = setTimeout(() => {
      const others = live.filter((m) => m.id !== this.init.selfId);
      const peer = others[Math.floor(Math.random() * others.length)];
      if (peer && !this.stopped) {
        this.core.syncWith(peer.id);
        this.flush();
      }
      this.scheduleSync();
    }, delayMs);
  }
}
