// The membership state machine: SWIM + Lifeguard. See types.ts for the contract.
// CONTRACT (the shell in src/agent depends on exactly these members; keep them):
//   new Membership({ self, incarnation, config, rng, nowMs })
//   tick(nowMs)                         advance time: probes, timeouts, suspicion expiry, push-pull, reaping
//   receive(from, msg, nowMs)           a point-to-point message from node `from`
//   receiveGossip(from, updates, nowMs) a batch from the gossip topic, published by `from`
//   pushPull(to, address, join, nowMs)  start a full-state exchange (used by join / `mesh join`)
//   leave(nowMs)                        graceful leave: mark self left (inc+1), publish, send directly to a few
//   setMeta(meta, nowMs)                change own meta: inc+1 and publish alive
//   drain(): Output                     take everything queued since the last drain
//   nextDeadlineMs(): number | undefined  the earliest time tick() has work to do
//   members(): Member[]                 all known members including self, sorted by name then id
//   member(id): Member | undefined
//   self(): Member
//   localHealth(): number               Lifeguard awareness score (0 = healthy)
//   stats(): MembershipStats            counters for metrics/diagnostics
// Additions beyond the contract: checkInvariants() (used by the simulator and tests).
//
// Update rules follow hashicorp/memberlist (state.go: aliveNode, suspectNode, deadNode, refute,
// mergeState). Dissemination differs: the gossip topic delivers every published update to every
// node, so only updates we originate or learn point-to-point are published; updates received from
// the topic are applied and not republished.
import { shuffle } from '../rand.js';
import { Awareness } from './awareness.js';
import { type MembershipConfig, pushPullScaleMs } from './config.js';
import { Outbox } from './outbox.js';
import { Prober } from './probe.js';
import { Suspicion } from './suspicion.js';
import { copyInfo, isLive, MemberTable, sameInfo, snapshot } from './table.js';
import type { Member, MemberInfo, MemberState, Message, NodeId, Output, Rng, Update } from './types.js';
import { checkInfo, LIMITS } from './validate.js';

export interface MembershipInit {
  self: MemberInfo;
  /** Starting incarnation; the shell passes (last persisted incarnation + 1) on restart. */
  incarnation: number;
  config: MembershipConfig;
  rng: Rng;
  nowMs: number;
}

export interface MembershipStats {
  /** Direct pings sent by our own probes. */
  probesSent: number;
  /** Our probes that got no ack, direct or indirect. */
  probesFailed: number;
  /** ping-req messages sent (one per relay asked). */
  indirectProbesSent: number;
  /** Times we raised our incarnation to contradict a suspicion, failure or stale claim about us. */
  refutations: number;
  /** Suspicions this node raised after a failed probe (not those it learned from others). */
  suspicionsRaised: number;
  /** Members that turned failed in our table (by our timer or by news from others). */
  membersFailed: number;
  /** Push-pull exchanges we started (join, periodic, reconnect); replies are not counted. */
  pushPullsSent: number;
  /** New members not added because the table was full, plus outputs dropped on full queues. */
  updatesDropped: number;
  /** ping-req requests refused because RELAYS_MAX relays were outstanding. */
  relaysDropped: number;
}

/** How an update reached us; decides whether a change is published and where a refutation goes. */
interface Via {
  source: 'local' | 'direct' | 'gossip';
  from: NodeId;
}

/** Queue capacity of the outbox, per queue; far above what one drain cycle produces. */
const OUTBOX_QUEUE_MAX = 4 * LIMITS.statesMax + 4096;

export class Membership {
  private readonly config: MembershipConfig;
  private readonly rng: Rng;
  private readonly selfId: NodeId;
  private readonly table: MemberTable;
  private readonly outbox: Outbox;
  private readonly awareness: Awareness;
  private readonly suspicions = new Map<NodeId, Suspicion>();
  private readonly prober: Prober;
  private readonly counters: MembershipStats = {
    probesSent: 0,
    probesFailed: 0,
    indirectProbesSent: 0,
    refutations: 0,
    suspicionsRaised: 0,
    membersFailed: 0,
    pushPullsSent: 0,
    updatesDropped: 0,
    relaysDropped: 0,
  };
  private leaving = false;
  private seq = 0;
  private lastNowMs: number;
  private nextPushPullAtMs: number;
  private nextReconnectAtMs: number;

  constructor(init: MembershipInit) {
    checkConfig(init.config);
    const bad = checkInfo(init.self);
    if (bad !== undefined) throw new Error(`membership: invalid self info: ${bad}`);
    if (!Number.isSafeInteger(init.incarnation) || init.incarnation < 0) {
      throw new Error(`membership: incarnation must be a non-negative integer, got ${init.incarnation}`);
    }
    if (!Number.isFinite(init.nowMs)) throw new Error('membership: nowMs must be finite');
    this.config = { ...init.config };
    this.rng = init.rng;
    this.selfId = init.self.id;
    this.lastNowMs = init.nowMs;
    this.outbox = new Outbox(this.config.updatesPerMessageMax, OUTBOX_QUEUE_MAX);
    this.table = new MemberTable(this.config, (e) => this.outbox.event(e));
    this.awareness = new Awareness(this.config.awarenessMaxMultiplier);
    this.table.add(init.self, 'alive', init.incarnation, init.nowMs);
    this.prober = new Prober(
      {
        selfId: this.selfId,
        member: (id) => this.table.get(id),
        members: () => this.table.values(),
        addressOf: (id) => this.table.get(id)?.address ?? '',
        send: (to, address, msg) => this.outbox.send(to, address, msg),
        nextSeq: () => this.nextSeq(),
        probeFailed: (target, nowMs) => this.probeFailed(target, nowMs),
      },
      this.config,
      this.rng,
      this.awareness,
      this.counters,
      init.nowMs,
    );
    // Random phases, so agents started together do not exchange state in lockstep.
    this.nextPushPullAtMs = init.nowMs + this.jitter(this.config.pushPullIntervalMs);
    this.nextReconnectAtMs = init.nowMs + this.jitter(this.config.reconnectIntervalMs);
  }

  tick(nowMs: number): void {
    const now = this.clock(nowMs);
    if (this.leaving) return;
    this.expireSuspicions(now);
    this.prober.tick(now);
    if (now >= this.nextPushPullAtMs) {
      this.nextPushPullAtMs = now + pushPullScaleMs(this.config.pushPullIntervalMs, this.table.liveCount());
      const peer = this.randomMembers(1, (m) => m.status === 'alive')[0];
      if (peer !== undefined) this.sendPushPull(peer.id, peer.address, false);
    }
    if (now >= this.nextReconnectAtMs) {
      this.nextReconnectAtMs = now + this.config.reconnectIntervalMs;
      const peer = this.randomMembers(1, (m) => m.status === 'failed')[0];
      if (peer !== undefined) this.sendPushPull(peer.id, peer.address, false);
    }
    this.table.reap(now, this.selfId);
  }

  receive(from: NodeId, msg: Message, nowMs: number): void {
    const now = this.clock(nowMs);
    if (this.leaving || from === this.selfId) return;
    const via: Via = { source: 'direct', from };
    switch (msg.t) {
      case 'ping':
        // A probe meant for a previous holder of our address: stay silent, as the target would.
        if (msg.target !== this.selfId) return;
        this.outbox.send(from, this.addressOf(from), { t: 'ack', seq: msg.seq });
        // Lifeguard buddy system: the prober suspects us; refute now rather than wait for gossip.
        if (msg.suspect) this.refute(this.selfMember().incarnation, now, via);
        return;
      case 'ack':
        this.prober.onAck(msg.seq);
        return;
      case 'nack':
        this.prober.onNack(msg.seq);
        return;
      case 'ping-req':
        if (msg.target === this.selfId) {
          // Asked to probe ourselves: we are evidently up, answer as the target would.
          this.outbox.send(from, this.addressOf(from), { t: 'ack', seq: msg.seq });
          return;
        }
        this.prober.relay(from, msg.seq, msg.target, msg.targetAddress, now);
        return;
      case 'push-pull':
        // Answer before merging (as memberlist); a reply is never answered, bounding the exchange.
        if (!msg.reply) {
          this.outbox.send(from, this.addressOf(from), {
            t: 'push-pull',
            join: false,
            reply: true,
            states: this.states(),
          });
        }
        this.merge(from, msg.states, now);
        return;
      case 'updates':
        for (const u of msg.updates) this.apply(u, now, via);
        return;
      default:
        unreachable(msg);
    }
  }

  receiveGossip(from: NodeId, updates: Update[], nowMs: number): void {
    const now = this.clock(nowMs);
    if (this.leaving || from === this.selfId) return;
    const via: Via = { source: 'gossip', from };
    for (const u of updates) this.apply(u, now, via);
  }

  pushPull(to: NodeId, address: string, join: boolean, nowMs: number): void {
    this.clock(nowMs);
    if (this.leaving || to === this.selfId) return;
    this.sendPushPull(to, address, join);
  }

  leave(nowMs: number): void {
    const now = this.clock(nowMs);
    if (this.leaving) return;
    const me = this.selfMember();
    const update: Update = { t: 'left', id: this.selfId, inc: me.incarnation + 1 };
    const peers = this.randomMembers(this.config.leaveDirectFanout, (m) => m.status === 'alive');
    this.leaving = true;
    this.table.update(this.selfId, { status: 'left', incarnation: update.inc }, now);
    this.outbox.publish(update);
    for (const p of peers) this.outbox.send(p.id, p.address, { t: 'updates', updates: [update] });
    this.prober.stop();
    this.suspicions.clear();
  }

  setMeta(meta: Record<string, string>, nowMs: number): void {
    const now = this.clock(nowMs);
    if (this.leaving) return;
    const me = this.selfMember();
    const info: MemberInfo = { ...copyInfo(me), meta: { ...meta } };
    const bad = checkInfo(info);
    if (bad !== undefined) throw new Error(`membership: setMeta: ${bad}`);
    const inc = me.incarnation + 1;
    this.table.update(this.selfId, { incarnation: inc, info }, now);
    this.outbox.publish({ t: 'alive', info: copyInfo(info), inc });
  }

  drain(): Output {
    return this.outbox.drain();
  }

  nextDeadlineMs(): number | undefined {
    if (this.leaving) return undefined;
    let t = Math.min(this.prober.nextDeadlineMs(), this.nextPushPullAtMs, this.nextReconnectAtMs);
    for (const s of this.suspicions.values()) t = Math.min(t, s.deadlineMs());
    const reap = this.table.nextReapMs();
    if (reap !== undefined) t = Math.min(t, reap);
    return t;
  }

  members(): Member[] {
    return this.table.sorted();
  }

  member(id: NodeId): Member | undefined {
    const m = this.table.get(id);
    return m === undefined ? undefined : snapshot(m);
  }

  self(): Member {
    return snapshot(this.selfMember());
  }

  localHealth(): number {
    return this.awareness.health();
  }

  stats(): MembershipStats {
    return { ...this.counters, updatesDropped: this.counters.updatesDropped + this.outbox.dropped };
  }

  /** The suspicion timer of a suspect member (for tests and diagnostics). */
  suspicion(id: NodeId): Readonly<Suspicion> | undefined {
    return this.suspicions.get(id);
  }

  /** Throw if the state breaks an invariant. O(N); the simulator calls it after every step. */
  checkInvariants(): void {
    this.table.checkInvariants(this.selfId);
    this.prober.checkInvariants();
    const me = this.selfMember();
    if (me.status !== (this.leaving ? 'left' : 'alive')) {
      throw new Error(`membership: self is ${me.status} (leaving: ${this.leaving})`);
    }
    for (const m of this.table.values()) {
      const s = this.suspicions.get(m.id);
      if ((m.status === 'suspect') !== (s !== undefined) && !this.leaving) {
        throw new Error(`membership: ${m.id} is ${m.status} but has ${s ? 'a' : 'no'} suspicion timer`);
      }
    }
    for (const id of this.suspicions.keys()) {
      if (this.table.get(id) === undefined) throw new Error(`membership: suspicion timer for unknown ${id}`);
    }
  }

  // ---- update rules -------------------------------------------------------------------------

  private apply(u: Update, now: number, via: Via): void {
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
      this.prober.add(id);
      this.changed(u, via);
      return;
    }
    if (u.inc <= m.incarnation) return;
    this.suspicions.delete(id);
    this.table.update(id, { status: 'alive', incarnation: u.inc, info: u.info }, now);
    this.prober.add(id);
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
  private refute(accusedInc: number, now: number, via: Via): void {
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
    if (via.source === 'direct') {
      this.outbox.send(via.from, this.addressOf(via.from), { t: 'updates', updates: [alive] });
    }
  }

  /** Publish an update that changed our state, unless the topic already delivered it to everyone. */
  private changed(u: Update, via: Via): void {
    if (via.source !== 'gossip') this.outbox.publish(u);
  }

  /** Merge a remote full state. A remote `failed` only makes us suspect (we may still reach the node). */
  private merge(from: NodeId, states: MemberState[], now: number): void {
    const via: Via = { source: 'direct', from };
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

  // ---- timers ----------------------------------------------------------------------------------

  private probeFailed(target: NodeId, now: number): void {
    const m = this.table.get(target);
    if (m === undefined || !isLive(m.status)) return;
    // Probing a member that is already suspect and failing again confirms the suspicion.
    if (m.status === 'alive') this.counters.suspicionsRaised++;
    this.apply({ t: 'suspect', id: target, inc: m.incarnation, from: this.selfId }, now, {
      source: 'local',
      from: this.selfId,
    });
  }

  private expireSuspicions(now: number): void {
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

  // ---- helpers ---------------------------------------------------------------------------------

  private sendPushPull(to: NodeId, address: string, join: boolean): void {
    this.counters.pushPullsSent++;
    this.outbox.send(to, address, { t: 'push-pull', join, reply: false, states: this.states() });
  }

  private states(): MemberState[] {
    const out: MemberState[] = [];
    for (const m of this.table.values())
      out.push({ info: copyInfo(m), status: m.status, inc: m.incarnation });
    return out;
  }

  /** Up to `k` distinct random members other than self that match `pred`. O(N). */
  private randomMembers(k: number, pred: (m: Member) => boolean): Member[] {
    const candidates: Member[] = [];
    for (const m of this.table.values()) if (m.id !== this.selfId && pred(m)) candidates.push(m);
    return shuffle(candidates, this.rng).slice(0, k);
  }

  private selfMember(): Member {
    const me = this.table.get(this.selfId);
    if (me === undefined) throw new Error('membership: self missing from the member table');
    return me;
  }

  private addressOf(id: NodeId): string {
    return this.table.get(id)?.address ?? '';
  }

  private nextSeq(): number {
    // Wraps long before losing integer precision; a seq only has to differ from the few in flight.
    this.seq = this.seq >= Number.MAX_SAFE_INTEGER ? 0 : this.seq + 1;
    return this.seq;
  }

  /** Time never runs backwards inside the core: a shell clock step back is clamped to the last time. */
  private clock(nowMs: number): number {
    if (!Number.isFinite(nowMs)) throw new Error(`membership: nowMs must be finite, got ${nowMs}`);
    if (nowMs > this.lastNowMs) this.lastNowMs = nowMs;
    return this.lastNowMs;
  }

  private jitter(intervalMs: number): number {
    return Math.floor(intervalMs * (0.5 + 0.5 * this.rng.next()));
  }
}

function checkConfig(c: MembershipConfig): void {
  const positive: (keyof MembershipConfig)[] = [
    'probeIntervalMs',
    'probeTimeoutMs',
    'suspicionMult',
    'suspicionMaxTimeoutMult',
    'awarenessMaxMultiplier',
    'pushPullIntervalMs',
    'reconnectIntervalMs',
    'membersMax',
    'updatesPerMessageMax',
  ];
  for (const k of positive) {
    if (!Number.isSafeInteger(c[k]) || c[k] < 1)
      throw new Error(`membership config: ${k} must be a positive integer`);
  }
  for (const k of ['indirectChecks', 'failedReapMs', 'leftReapMs', 'leaveDirectFanout'] as const) {
    if (!Number.isSafeInteger(c[k]) || c[k] < 0) throw new Error(`membership config: ${k} must be ≥ 0`);
  }
  if (c.probeTimeoutMs > c.probeIntervalMs) {
    throw new Error('membership config: probeTimeoutMs must not exceed probeIntervalMs');
  }
  if (c.membersMax > LIMITS.statesMax) {
    throw new Error(
      `membership config: membersMax must be ≤ ${LIMITS.statesMax} (the push-pull state limit)`,
    );
  }
  if (c.updatesPerMessageMax > LIMITS.updatesMax) {
    throw new Error(`membership config: updatesPerMessageMax must be ≤ ${LIMITS.updatesMax}`);
  }
}

function unreachable(v: never): never {
  throw new Error(`membership: unexpected value ${JSON.stringify(v)}`);
}
