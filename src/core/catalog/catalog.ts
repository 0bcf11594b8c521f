// The cluster-wide service catalog every agent holds in memory: each agent's instances (with
// their check states), learned by gossip. Pure: messages in, messages out, no I/O or clock.
//
// Each agent is the only writer of its own record, so there is nothing to agree on: a record's
// version only grows (version = generation × 2^32 + sequence; the shell persists the generation and
// bumps it at every start, so a restarted agent's versions are above its old ones). The owner
// publishes each change as a delta from `base` to `version`. A receiver applies a delta whose base
// is the version it holds (or whose base is the empty start of a generation); otherwise it missed
// one and pulls the whole record from the owner. Periodic digest exchanges with a random agent
// (anti-entropy) repair anything gossip lost, as memberlist's push-pull does for membership.
//
// Blocking queries need to know when something changed: `index` counts every change this agent
// applied, and each service name remembers the index of its last change.

import type { Instance } from './types.js';
import { type CatalogMessage, type Delta, type NodeId, type NodeRecord, WIRE_LIMITS } from './wire.js';

/** Versions are generation × 2^32 + sequence: 2^21 generations (restarts) before 2^53. */
export const GENERATION_SPAN = 2 ** 32;
export const GENERATION_MAX = 2 ** 21 - 1;

export const CATALOG_LIMITS = Object.freeze({
  /** Estimated size (JSON characters) of a delta's contents above which only a version bump is
   * gossiped (`truncated`) and receivers pull the record: gossip messages stay small. */
  deltaCharsMax: 64 * 1024,
  /** A pull not answered in this long may be sent again. */
  pullRetryMs: 2_000,
  /** A record whose node membership does not know is kept this long (membership may lag behind
   * the catalog when an agent joins), then dropped. */
  unknownNodeGraceMs: 60_000,
});

export interface CatalogStats {
  deltasApplied: number;
  deltasStale: number;
  /** Deltas that could not be applied because one before them was missed; each starts a pull. */
  gaps: number;
  recordsApplied: number;
  pullsSent: number;
  digestsSent: number;
  /** Records not taken because the catalog already tracks WIRE_LIMITS.nodesMax agents. */
  recordsDropped: number;
}

export interface Outgoing {
  to: NodeId;
  msg: CatalogMessage;
}

/** One instance with the agent that hosts it. */
export interface Placed {
  node: NodeId;
  instance: Instance;
}

interface Held {
  version: number;
  instances: Map<string, Instance>;
}

/** Canonical form for change detection: key order does not matter to a definition's meaning. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : x,
  );
}

export class Catalog {
  private readonly records = new Map<NodeId, Held>();
  /** service name → "node\0instance id" → placed instance, kept in step with `records`. */
  private readonly byName = new Map<string, Map<string, Placed>>();
  private readonly serviceIndexes = new Map<string, number>();
  /** Index of the last change of a service name no longer tracked (its entry was dropped). */
  private forgottenIndex = 0;
  private changeIndex = 1;
  private readonly pulling = new Map<NodeId, number>();
  private readonly unknownSince = new Map<NodeId, number>();
  private outbox: Outgoing[] = [];
  private localSeq = 0;
  readonly stats: CatalogStats = {
    deltasApplied: 0,
    deltasStale: 0,
    gaps: 0,
    recordsApplied: 0,
    pullsSent: 0,
    digestsSent: 0,
    recordsDropped: 0,
  };

  constructor(
    readonly selfId: NodeId,
    readonly generation: number,
  ) {
    if (!Number.isSafeInteger(generation) || generation < 0 || generation > GENERATION_MAX) {
      throw new Error(
        `catalog: generation must be an integer from 0 to ${GENERATION_MAX}, got ${generation}`,
      );
    }
    this.records.set(selfId, { version: generation * GENERATION_SPAN, instances: new Map() });
  }

  /** Changes applied so far (never 0, so it can always serve as a blocking-query index). */
  get index(): number {
    return this.changeIndex;
  }

  /** Index of the last change to any instance of `name` (or to the health of its node). */
  serviceIndex(name: string): number {
    return this.serviceIndexes.get(name) ?? this.forgottenIndex;
  }

  /** Replace this agent's own instances; returns the delta to publish, or undefined if nothing changed. */
  setLocal(instances: readonly Instance[]): Delta | undefined {
    if (instances.length > WIRE_LIMITS.instancesPerNodeMax) {
      throw new Error(`catalog: at most ${WIRE_LIMITS.instancesPerNodeMax} local instances`);
    }
    const held = this.records.get(this.selfId)!;
    const next = new Map(instances.map((i) => [i.id, i]));
    const upserts: Instance[] = [];
    const removes: string[] = [];
    for (const [id, inst] of next) {
      const old = held.instances.get(id);
      // The shell hands back the same object for an unchanged instance: no serialising needed.
      if (old !== inst && (!old || canonical(old) !== canonical(inst))) upserts.push(inst);
    }
    for (const id of held.instances.keys()) if (!next.has(id)) removes.push(id);
    if (upserts.length === 0 && removes.length === 0) return undefined;
    if (this.localSeq + 1 >= GENERATION_SPAN)
      throw new Error('catalog: local sequence exhausted; restart the agent');
    const base = held.version;
    this.localSeq++;
    const version = this.generation * GENERATION_SPAN + this.localSeq;
    this.applyChanges(this.selfId, held, upserts, removes);
    held.version = version;
    upserts.sort((a, b) => (a.id < b.id ? -1 : 1));
    const truncated = canonical(upserts).length + canonical(removes).length > CATALOG_LIMITS.deltaCharsMax;
    return truncated
      ? { node: this.selfId, base, version, upserts: [], removes: [], truncated }
      : { node: this.selfId, base, version, upserts, removes, truncated };
  }

  /** A delta from the gossip topic. */
  receiveDelta(d: Delta, nowMs: number): void {
    if (d.node === this.selfId) return;
    const held = this.records.get(d.node);
    const have = held?.version ?? -1;
    if (d.version <= have) {
      this.stats.deltasStale++;
      return;
    }
    // Sequence 0 of a generation is the empty record: a delta from it needs nothing before it.
    const fromEmpty = d.base % GENERATION_SPAN === 0;
    if (!d.truncated && (have === d.base || fromEmpty)) {
      let target = held;
      if (!target || (fromEmpty && have !== d.base)) {
        if (!target && !this.canTrack()) return;
        target = this.reset(d.node, d.base);
      }
      this.applyChanges(d.node, target, d.upserts, d.removes);
      target.version = d.version;
      this.pulling.delete(d.node);
      this.stats.deltasApplied++;
      return;
    }
    this.stats.gaps++;
    this.pull(d.node, nowMs);
  }

  /** A point-to-point message from `from`. */
  receive(from: NodeId, msg: CatalogMessage): void {
    switch (msg.t) {
      case 'digest': {
        const theirs = new Map(msg.versions);
        const newer: NodeId[] = [];
        for (const [node, held] of this.records) {
          const v = theirs.get(node);
          if (v === undefined || v < held.version) newer.push(node);
        }
        const want: NodeId[] = [];
        for (const [node, v] of msg.versions) {
          if (node === this.selfId) continue;
          if (v > (this.records.get(node)?.version ?? -1) && want.length < WIRE_LIMITS.nodesPerRequestMax) {
            want.push(node);
          }
        }
        this.send(from, { t: 'records', records: this.recordsFor(newer), want });
        return;
      }
      case 'records':
        for (const r of msg.records) this.receiveRecord(r);
        if (msg.want.length > 0)
          this.send(from, { t: 'records', records: this.recordsFor(msg.want), want: [] });
        return;
      case 'pull':
        this.send(from, { t: 'records', records: this.recordsFor(msg.nodes), want: [] });
        return;
    }
  }

  /** Start an anti-entropy exchange with `peer`. */
  syncWith(peer: NodeId): void {
    if (peer === this.selfId) return;
    this.stats.digestsSent++;
    this.send(peer, { t: 'digest', versions: [...this.records].map(([n, h]) => [n, h.version]) });
  }

  /** Drop a node's record (it left the cluster). */
  removeNode(node: NodeId): void {
    if (node === this.selfId) return;
    const held = this.records.get(node);
    if (!held) return;
    this.applyChanges(node, held, [], [...held.instances.keys()]);
    this.records.delete(node);
    this.pulling.delete(node);
    this.unknownSince.delete(node);
  }

  /**
   * A node's membership status changed (its agent joined, failed or came back): its instances'
   * health changed without their records changing, so bump the indexes blocking queries watch.
   */
  touchNode(node: NodeId): void {
    // The node list itself changed too, so the global index moves even without instances.
    this.changeIndex++;
    const held = this.records.get(node);
    for (const inst of held?.instances.values() ?? []) this.serviceIndexes.set(inst.name, this.changeIndex);
  }

  /**
   * Drop records of agents that left, or that membership has not known for a while (reaped, or
   * never joined). `status` is membership's view of a node.
   */
  prune(status: (node: NodeId) => string | undefined, nowMs: number): void {
    for (const node of [...this.records.keys()]) {
      if (node === this.selfId) continue;
      const s = status(node);
      if (s === 'left') {
        this.removeNode(node);
      } else if (s === undefined) {
        const since = this.unknownSince.get(node);
        if (since === undefined) this.unknownSince.set(node, nowMs);
        else if (nowMs - since >= CATALOG_LIMITS.unknownNodeGraceMs) this.removeNode(node);
      } else {
        this.unknownSince.delete(node);
      }
    }
    for (const [node, at] of this.pulling)
      if (nowMs - at >= CATALOG_LIMITS.pullRetryMs) this.pulling.delete(node);
  }

  drain(): Outgoing[] {
    const out = this.outbox;
    this.outbox = [];
    return out;
  }

  // --- Queries ---

  /** Service names with their instances, sorted by name. */
  serviceNames(): string[] {
    return [...this.byName.keys()].sort();
  }

  /** Every instance of a service (healthy or not), in no particular order: for counting and DNS. */
  placed(name: string): Iterable<Placed> {
    return this.byName.get(name)?.values() ?? [];
  }

  /** Every instance of a service (healthy or not), sorted by node then id. */
  instances(name: string): Placed[] {
    const m = this.byName.get(name);
    if (!m) return [];
    return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, p]) => p);
  }

  /** Instances hosted by one agent, sorted by id. */
  nodeInstances(node: NodeId): Instance[] {
    const held = this.records.get(node);
    if (!held) return [];
    return [...held.instances.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  nodeVersion(node: NodeId): number | undefined {
    return this.records.get(node)?.version;
  }

  nodes(): NodeId[] {
    return [...this.records.keys()];
  }

  instanceCount(): number {
    let n = 0;
    for (const h of this.records.values()) n += h.instances.size;
    return n;
  }

  /** Internal consistency, for tests and the simulator: byName mirrors the records exactly. */
  checkInvariants(): void {
    let placed = 0;
    for (const [name, m] of this.byName) {
      if (m.size === 0) throw new Error(`catalog: empty name entry ${name}`);
      for (const [key, p] of m) {
        placed++;
        const inst = this.records.get(p.node)?.instances.get(p.instance.id);
        if (inst !== p.instance || key !== `${p.node}\0${p.instance.id}` || inst.name !== name) {
          throw new Error(`catalog: by-name index out of step for ${key}`);
        }
      }
    }
    if (placed !== this.instanceCount()) throw new Error('catalog: by-name index misses instances');
  }

  // --- Internals ---

  private canTrack(): boolean {
    if (this.records.size < WIRE_LIMITS.nodesMax) return true;
    this.stats.recordsDropped++;
    return false;
  }

  private receiveRecord(r: NodeRecord): void {
    if (r.node === this.selfId) return;
    const held = this.records.get(r.node);
    if (held && held.version >= r.version) return;
    if (!held && !this.canTrack()) return;
    const target = held ?? this.reset(r.node, r.version);
    const next = new Set(r.instances.map((i) => i.id));
    const removes = [...target.instances.keys()].filter((id) => !next.has(id));
    const upserts = r.instances.filter((i) => {
      const old = target.instances.get(i.id);
      return !old || canonical(old) !== canonical(i);
    });
    this.applyChanges(r.node, target, upserts, removes);
    target.version = r.version;
    this.pulling.delete(r.node);
    this.unknownSince.delete(r.node);
    this.stats.recordsApplied++;
  }

  /** Replace (or create) a node's record with an empty one at `version`. */
  private reset(node: NodeId, version: number): Held {
    const held = this.records.get(node);
    if (held) this.applyChanges(node, held, [], [...held.instances.keys()]);
    const fresh: Held = { version, instances: new Map() };
    this.records.set(node, fresh);
    return fresh;
  }

  private applyChanges(
    node: NodeId,
    held: Held,
    upserts: readonly Instance[],
    removes: readonly string[],
  ): void {
    if (upserts.length === 0 && removes.length === 0) return;
    this.changeIndex++;
    for (const id of removes) {
      const old = held.instances.get(id);
      if (!old) continue;
      held.instances.delete(id);
      this.unplace(node, old);
    }
    for (const inst of upserts) {
      const old = held.instances.get(inst.id);
      if (old) this.unplace(node, old);
      held.instances.set(inst.id, inst);
      let m = this.byName.get(inst.name);
      if (!m) {
        m = new Map();
        this.byName.set(inst.name, m);
      }
      m.set(`${node}\0${inst.id}`, { node, instance: inst });
      this.serviceIndexes.set(inst.name, this.changeIndex);
    }
  }

  private unplace(node: NodeId, inst: Instance): void {
    const m = this.byName.get(inst.name);
    this.serviceIndexes.set(inst.name, this.changeIndex);
    if (!m) return;
    m.delete(`${node}\0${inst.id}`);
    if (m.size === 0) {
      this.byName.delete(inst.name);
      // The name's index is kept while it is within the bound, so a blocking query on a service
      // that just disappeared still sees its change; beyond it, names fold into one floor index.
      if (this.serviceIndexes.size > WIRE_LIMITS.nodesMax * 4) {
        this.forgottenIndex = Math.max(this.forgottenIndex, this.changeIndex);
        this.serviceIndexes.delete(inst.name);
      }
    }
  }

  private recordsFor(nodes: readonly NodeId[]): NodeRecord[] {
    const out: NodeRecord[] = [];
    let budget = WIRE_LIMITS.instancesPerMessageMax;
    for (const node of nodes) {
      const held = this.records.get(node);
      if (!held) continue;
      // Always at least one record, so a record at the per-node maximum still travels.
      if (out.length > 0 && held.instances.size > budget) break;
      budget -= held.instances.size;
      out.push({
        node,
        version: held.version,
        instances: [...held.instances.values()].sort((a, b) => (a.id < b.id ? -1 : 1)),
      });
    }
    return out;
  }

  private pull(node: NodeId, nowMs: number): void {
    const since = this.pulling.get(node);
    if (since !== undefined && nowMs - since < CATALOG_LIMITS.pullRetryMs) return;
    if (since === undefined && this.pulling.size >= WIRE_LIMITS.nodesMax) return;
    this.pulling.set(node, nowMs);
    this.stats.pullsSent++;
    this.send(node, { t: 'pull', nodes: [node] });
  }

  private send(to: NodeId, msg: CatalogMessage): void {
    this.outbox.push({ to, msg });
  }
}
