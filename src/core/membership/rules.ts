// SWIM update rules (after hashicorp/memberlist state.go: aliveNode, suspectNode, deadNode,
// refute, mergeState) and the suspicion timers they start. Dissemination differs from memberlist:
// the gossip topic delivers every published update to every node, so a change is published only
// when we originated it or learned it point-to-point; updates from the topic are not republished.
import type { Awareness } from './awareness.js';
import type { MembershipConfig } from './config.js';
import type { Outbox } from './outbox.js';
import { Suspicion } from './suspicion.js';
import { copyInfo, isLive, type MemberTable, sameInfo } from './table.js';
import type { Member, MemberState, NodeId, Update } from './types.js';

/** How an update reached us; decides whether a change is published and where a refutation goes. */
export interface Via {
  /** 'sync': learned from the answer to our own join push-pull. The seed already knows it and so,
   * nearly always, does everyone else: republishing a whole member list per joining node would
   * cost O(N²) gossip as a cluster forms. */
  source: 'local' | 'direct' | 'sync' | 'gossip';
  from: NodeId;
}

export interface RuleCounters {
  refutations: number;
  suspicionsRaised: number;
  membersFailed: number;
  updatesDropped: number;
}

export class Rules {
  /** Suspicion timers, one per member in `suspect` state. */
  readonly suspicions = new Map<NodeId, Suspicion>();

  constructor(
    private readonly selfId: NodeId,
    private readonly config: MembershipConfig,
    private readonly table: MemberTable,
    private readonly outbox: Outbox,
    private readonly awareness: Awareness,
    private readonly counters: RuleCounters,
    /** A member became alive (new, or back with a higher incarnation): the prober should include it. */
    private readonly onProbeable: (id: NodeId) => void,
  ) {}

  apply(u: Update, now: number, via: Via): void {
    switch (u.t) {
      case 'alive':
        this.applyAlive(u, now, via);
        return;
      case 'suspect':
        this.applySuspect(u, now, via);
        return;
      case 'failed':
        this.applyFailed(u, now, via);
        return;
      case 'left':
        this.applyLeft(u, now, via);
        return;
      default:
        unreachable(u);
    }
  }

  private applyAlive(u: Extract<Update, { t: 'alive' }>, now: number, via: Via): void {
    const id = u.info.id;
    if (id === this.selfId) {
      const me = this.selfMember();
      // Older news about us, or our own current state echoed back: nothing to contradict.
      if (u.inc < me.incarnation || (u.inc === me.incarnation && sameInfo(me, u.info))) return;
      this.refute(u.inc, now, via);
      return;
    }
    const m = this.table.get(id);
    if (m === undefined) {
      if (!this.table.add(u.info, 'alive', u.inc, now)) {
        this.counters.updatesDropped++;
        return;
      }
      this.onProbeable(id);
      this.changed(u, via);
      return;
    }
    if (u.inc <= m.incarnation) return;
    this.suspicions.delete(id);
    this.table.update(id, { status: 'alive', incarnation: u.inc, info: u.info }, now);
    this.onProbeable(id);
    this.changed(u, via);
  }

  private applySuspect(u: Extract<Update, { t: 'suspect' }>, now: number, via: Via): void {
    if (u.id === this.selfId) {
      if (u.inc >= this.selfMember().incarnation) this.refute(u.inc, now, via);
      return;
    }
    const m = this.table.get(u.id);
    if (m === undefined || u.inc < m.incarnation || !isLive(m.status)) return;
    if (m.status === 'suspect') {
      const timer = this.suspicions.get(u.id);
      if (timer === undefined) throw new Error(`membership: suspect ${u.id} has no suspicion timer`);
      // Already suspected: an independent confirmation shrinks the timer. A new one is published
      // (so other timers shrink too) unless it came from the topic, which reached everyone.
      if (u.inc > m.incarnation) this.table.update(u.id, { incarnation: u.inc }, now);
      if (timer.confirm(u.from)) this.changed(u, via);
      return;
    }
    this.suspicions.set(u.id, new Suspicion(u.from, now, this.table.liveCount(), this.config));
    this.table.update(u.id, { status: 'suspect', incarnation: u.inc }, now);
    this.changed(u, via);
  }

  private applyFailed(u: Extract<Update, { t: 'failed' }>, now: number, via: Via): void {
    if (u.id === this.selfId) {
      if (u.inc >= this.selfMember().incarnation) this.refute(u.inc, now, via);
      return;
    }
    const m = this.table.get(u.id);
    if (m === undefined || u.inc < m.incarnation || !isLive(m.status)) return;
    this.suspicions.delete(u.id);
    this.table.update(u.id, { status: 'failed', incarnation: u.inc }, now);
    this.counters.membersFailed++;
    this.changed(u, via);
  }

  private applyLeft(u: Extract<Update, { t: 'left' }>, now: number, via: Via): void {
    if (u.id === this.selfId) {
      if (u.inc >= this.selfMember().incarnation) this.refute(u.inc, now, via);
      return;
    }
    const m = this.table.get(u.id);
    // A leave wins over a failure at the same incarnation: the node said goodbye, it did not crash.
    if (m === undefined || u.inc < m.incarnation || m.status === 'left') return;
    this.suspicions.delete(u.id);
    this.table.update(u.id, { status: 'left', incarnation: u.inc }, now);
    this.changed(u, via);
  }

  /** Contradict a claim about us by raising our incarnation above it and announcing we are alive. */
  refute(accusedInc: number, now: number, via: Via): void {
    const me = this.selfMember();
    const inc = Math.max(me.incarnation, accusedInc) + 1;
    if (!Number.isSafeInteger(inc)) throw new Error('membership: incarnation overflow');
    this.table.update(this.selfId, { incarnation: inc }, now);
    this.counters.refutations++;
    // Lifeguard: having to refute means others could not hear us in time; maybe we are the slow one.
    this.awareness.apply(1);
    const alive: Update = { t: 'alive', info: copyInfo(me), inc };
    this.outbox.publish(alive);
    // The accuser learned its view point-to-point and may be cut off from the topic (a healing
    // partition, a reconnect): tell it directly as well.
    if (via.source === 'direct' || via.source === 'sync') {
      this.outbox.send(via.from, this.addressOf(via.from), { t: 'updates', updates: [alive] });
    }
  }

  /** Publish an update that changed our state, unless the topic already delivered it to everyone. */
  private changed(u: Update, via: Via): void {
    if (via.source === 'local' || via.source === 'direct') this.outbox.publish(u);
  }

  /** Merge a remote full state. A remote `failed` only makes us suspect (we may still reach the node). */
  merge(from: NodeId, states: MemberState[], now: number, republish = true): void {
    const via: Via = { source: republish ? 'direct' : 'sync', from };
    for (const s of states) {
      const id = s.info.id;
      switch (s.status) {
        case 'alive':
          this.apply({ t: 'alive', info: s.info, inc: s.inc }, now, via);
          break;
        case 'suspect':
        case 'failed':
          this.apply({ t: 'suspect', id, inc: s.inc, from }, now, via);
          break;
        case 'left':
          this.apply({ t: 'left', id, inc: s.inc }, now, via);
          break;
        default:
          unreachable(s.status);
      }
    }
  }

  probeFailed(target: NodeId, now: number): void {
    const m = this.table.get(target);
    if (m === undefined || !isLive(m.status)) return;
    // Probing a member that is already suspect and failing again confirms the suspicion.
    if (m.status === 'alive') this.counters.suspicionsRaised++;
    this.apply({ t: 'suspect', id: target, inc: m.incarnation, from: this.selfId }, now, {
      source: 'local',
      from: this.selfId,
    });
  }

  expireSuspicions(now: number): void {
    const expired: NodeId[] = [];
    for (const [id, s] of this.suspicions) if (s.deadlineMs() <= now) expired.push(id);
    for (const id of expired) {
      const m = this.table.get(id);
      if (m === undefined) throw new Error(`membership: suspicion timer for unknown ${id}`);
      this.apply({ t: 'failed', id, inc: m.incarnation, from: this.selfId }, now, {
        source: 'local',
        from: this.selfId,
      });
    }
  }

  private selfMember(): Member {
    return this.table.expect(this.selfId);
  }

  private addressOf(id: NodeId): string {
    return this.table.addressOf(id);
  }
}

function unreachable(v: never): never {
  throw new Error(`membership: unexpected value ${JSON.stringify(v)}`);
}
