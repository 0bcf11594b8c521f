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
// Additions beyond the contract: checkInvariants() (used by the simulator at the end of a run, and tests).
//
// The update rules live in rules.ts, probing in probe.ts, the table in table.ts.
import { Awareness } from './awareness.js';
import { type MembershipConfig, pushPullScaleMs } from './config.js';
import { Outbox } from './outbox.js';
import { Prober } from './probe.js';
import { Rules, type Via } from './rules.js';
import type { Suspicion } from './suspicion.js';
import { copyInfo, MemberTable, snapshot } from './table.js';
import type {
  Member,
  MemberInfo,
  MemberState,
  MemberStatus,
  Message,
  NodeId,
  Output,
  Rng,
  Update,
} from './types.js';
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

/** Queue capacity of the outbox, per queue; far above what one drain cycle produces. */
const OUTBOX_QUEUE_MAX = 4 * LIMITS.statesMax + 4096;

export class Membership {
  private readonly config: MembershipConfig;
  private readonly rng: Rng;
  private readonly selfId: NodeId;
  private readonly table: MemberTable;
  private readonly outbox: Outbox;
  private readonly awareness: Awareness;
  private readonly rules: Rules;
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
    this.rules = new Rules(
      this.selfId,
      this.config,
      this.table,
      this.outbox,
      this.awareness,
      this.counters,
      (id) => this.prober.add(id),
    );
    this.prober = new Prober(
      {
        selfId: this.selfId,
        member: (id) => this.table.get(id),
        members: () => this.table.values(),
        pickAlive: (k, except) => this.table.pick('alive', k, except, this.rng),
        addressOf: (id) => this.table.addressOf(id),
        send: (to, address, msg) => this.outbox.send(to, address, msg),
        nextSeq: () => this.nextSeq(),
        probeFailed: (target, nowMs) => this.rules.probeFailed(target, nowMs),
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
    this.rules.expireSuspicions(now);
    this.prober.tick(now);
    if (now >= this.nextPushPullAtMs) {
      this.nextPushPullAtMs = now + pushPullScaleMs(this.config.pushPullIntervalMs, this.table.liveCount());
      const peer = this.randomMembers(1, 'alive')[0];
      if (peer !== undefined) this.sendPushPull(peer.id, peer.address, false);
    }
    if (now >= this.nextReconnectAtMs) {
      this.nextReconnectAtMs = now + this.config.reconnectIntervalMs;
      // Only scan when some member is down (failed or left): the common case costs nothing.
      const anyDown = this.table.size() > this.table.liveCount();
      const peer = anyDown ? this.randomMembers(1, 'failed')[0] : undefined;
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
        if (msg.suspect) this.rules.refute(this.selfMember().incarnation, now, via);
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
            join: msg.join,
            reply: true,
            states: this.states(),
          });
        }
        // What the seed tells a joining node is news only to that node: do not republish it.
        this.rules.merge(from, msg.states, now, !(msg.reply && msg.join));
        // Joined: catch what gossip carried before this node was in the topic's mesh (config).
        if (msg.reply && msg.join) {
          this.nextPushPullAtMs = Math.min(this.nextPushPullAtMs, now + this.config.joinFollowUpMs);
        }
        return;
      case 'updates':
        for (const u of msg.updates) this.rules.apply(u, now, via);
        return;
      default:
        unreachable(msg);
    }
  }

  receiveGossip(from: NodeId, updates: Update[], nowMs: number): void {
    const now = this.clock(nowMs);
    if (this.leaving || from === this.selfId) return;
    const via: Via = { source: 'gossip', from };
    for (const u of updates) this.rules.apply(u, now, via);
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
    const peers = this.randomMembers(this.config.leaveDirectFanout, 'alive');
    this.leaving = true;
    this.table.update(this.selfId, { status: 'left', incarnation: update.inc }, now);
    this.outbox.publish(update);
    for (const p of peers) this.outbox.send(p.id, p.address, { t: 'updates', updates: [update] });
    this.prober.stop();
    this.rules.suspicions.clear();
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
    for (const s of this.rules.suspicions.values()) t = Math.min(t, s.deadlineMs());
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
    return this.rules.suspicions.get(id);
  }

  /** Throw if the state breaks an invariant. O(N); the simulator calls it on every agent after settling. */
  checkInvariants(): void {
    this.table.checkInvariants(this.selfId);
    this.prober.checkInvariants();
    const me = this.selfMember();
    if (me.status !== (this.leaving ? 'left' : 'alive')) {
      throw new Error(`membership: self is ${me.status} (leaving: ${this.leaving})`);
    }
    for (const m of this.table.values()) {
      const s = this.rules.suspicions.get(m.id);
      if ((m.status === 'suspect') !== (s !== undefined) && !this.leaving) {
        throw new Error(`membership: ${m.id} is ${m.status} but has ${s ? 'a' : 'no'} suspicion timer`);
      }
    }
    for (const id of this.rules.suspicions.keys()) {
      if (this.table.get(id) === undefined) throw new Error(`membership: suspicion timer for unknown ${id}`);
    }
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private sendPushPull(to: NodeId, address: string, join: boolean): void {
    this.counters.pushPullsSent++;
    this.outbox.send(to, address, { t: 'push-pull', join, reply: false, states: this.states() });
  }

  /** Our full state for a push-pull: frozen, and shared with other messages until a member changes. */
  private states(): MemberState[] {
    return this.table.states();
  }

  /** Up to `k` distinct random members other than self with `status`. O(k). */
  private randomMembers(k: number, status: MemberStatus): Member[] {
    return this.table.pick(status, k, [this.selfId], this.rng);
  }

  private selfMember(): Member {
    return this.table.expect(this.selfId);
  }

  private addressOf(id: NodeId): string {
    return this.table.addressOf(id);
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
    'joinFollowUpMs',
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
