// SWIM failure detection: one probe per (scaled) probe interval, to members taken in a shuffled
// round robin; a direct ping, then indirect pings through `indirectChecks` relays, then a
// suspicion. Also the relay side: probing a target on another node's behalf (ping-req), with
// Lifeguard's nack when the target stays silent.
import { shuffle } from '../rand.js';
import type { Awareness } from './awareness.js';
import type { MembershipConfig } from './config.js';
import { isLive } from './table.js';
import type { Member, Message, NodeId, Rng } from './types.js';

/** Outstanding relayed probes beyond this are dropped: a flood of ping-req cannot grow memory. */
export const RELAYS_MAX = 256;

/** What the prober needs from the membership state machine. */
export interface ProbeHost {
  readonly selfId: NodeId;
  member(id: NodeId): Member | undefined;
  members(): Iterable<Member>;
  /** Up to `k` random alive members not in `except`, as sample() over them in table order would pick. */
  pickAlive(k: number, except: readonly NodeId[]): Member[];
  /** Where to send a reply to `id`: its known address, or '' (the shell answers on the open connection). */
  addressOf(id: NodeId): string;
  send(to: NodeId, address: string, msg: Message): void;
  nextSeq(): number;
  /** The probe of `target` got no ack at all: raise a suspicion. */
  probeFailed(target: NodeId, nowMs: number): void;
}

export interface ProbeCounters {
  probesSent: number;
  probesFailed: number;
  indirectProbesSent: number;
  relaysDropped: number;
}

interface ActiveProbe {
  seq: number;
  target: NodeId;
  /** When the direct ping is given up and ping-req goes out. */
  ackDeadlineMs: number;
  /** End of the probe period: no ack by then means the probe failed. */
  endMs: number;
  indirect: boolean;
  expectedNacks: number;
  nacks: number;
}

interface Relay {
  origSeq: number;
  requester: NodeId;
  requesterAddress: string;
  nackAtMs: number;
  /** A late ack is still forwarded until then; the requester waits for the rest of its period. */
  expireAtMs: number;
  nacked: boolean;
}

export class Prober {
  private list: NodeId[] = [];
  private index = 0;
  /** Ids present in `list` (consumed or not), so a member is never queued twice. */
  private readonly inList = new Set<NodeId>();
  private active: ActiveProbe | undefined;
  private nextProbeAtMs: number;
  private readonly relays = new Map<number, Relay>();

  constructor(
    private readonly host: ProbeHost,
    private readonly config: MembershipConfig,
    private readonly rng: Rng,
    private readonly awareness: Awareness,
    private readonly counters: ProbeCounters,
    nowMs: number,
  ) {
    // A random phase, so nodes started together do not probe in lockstep.
    this.nextProbeAtMs = nowMs + Math.floor(rng.next() * config.probeIntervalMs);
  }

  /** A member became probeable: insert it at a random position so new members are probed soon, fairly. */
  add(id: NodeId): void {
    if (id === this.host.selfId || this.inList.has(id)) return;
    const at = this.index + Math.floor(this.rng.next() * (this.list.length - this.index + 1));
    this.list.splice(at, 0, id);
    this.inList.add(id);
  }

  tick(nowMs: number): void {
    this.tickRelays(nowMs);
    const p = this.active;
    if (p !== undefined) {
      if (!p.indirect && nowMs >= p.ackDeadlineMs) this.sendIndirect(p);
      if (nowMs >= p.endMs) this.finish(p, nowMs);
    }
    if (this.active === undefined && nowMs >= this.nextProbeAtMs) this.start(nowMs);
  }

  onAck(seq: number): void {
    const relay = this.relays.get(seq);
    if (relay !== undefined) {
      this.relays.delete(seq);
      this.host.send(relay.requester, relay.requesterAddress, { t: 'ack', seq: relay.origSeq });
      return;
    }
    const p = this.active;
    if (p === undefined || p.seq !== seq) return;
    // Success, direct or through a relay: we are healthy enough to hear back in time.
    this.active = undefined;
    this.awareness.apply(-1);
  }

  onNack(seq: number): void {
    const p = this.active;
    if (p === undefined || p.seq !== seq || !p.indirect) return;
    if (p.nacks < p.expectedNacks) p.nacks++;
  }

  /** Probe `target` for `requester` (a ping-req). */
  relay(requester: NodeId, origSeq: number, target: NodeId, targetAddress: string, nowMs: number): void {
    if (this.relays.size >= RELAYS_MAX) {
      this.counters.relaysDropped++;
      return;
    }
    const seq = this.host.nextSeq();
    const nackAtMs = nowMs + Math.floor(this.config.probeTimeoutMs * 0.8);
    this.relays.set(seq, {
      origSeq,
      requester,
      requesterAddress: this.host.addressOf(requester),
      nackAtMs,
      expireAtMs: Math.max(nackAtMs, nowMs + this.config.probeIntervalMs),
      nacked: false,
    });
    this.host.send(target, targetAddress, { t: 'ping', seq, target, suspect: false });
  }

  nextDeadlineMs(): number {
    let t = this.active === undefined ? this.nextProbeAtMs : this.active.endMs;
    if (this.active !== undefined && !this.active.indirect) t = Math.min(t, this.active.ackDeadlineMs);
    for (const r of this.relays.values()) t = Math.min(t, r.nacked ? r.expireAtMs : r.nackAtMs);
    return t;
  }

  /** The member under probe, if any (for tests and diagnostics). */
  probing(): NodeId | undefined {
    return this.active?.target;
  }

  stop(): void {
    this.active = undefined;
    this.relays.clear();
    this.nextProbeAtMs = Number.POSITIVE_INFINITY;
  }

  checkInvariants(): void {
    if (this.relays.size > RELAYS_MAX)
      throw new Error(`probe: ${this.relays.size} relays exceed ${RELAYS_MAX}`);
    if (this.inList.size !== this.list.length) {
      throw new Error(`probe: list of ${this.list.length} holds ${this.inList.size} distinct ids`);
    }
    if (this.index > this.list.length) throw new Error('probe: round-robin index past the end of the list');
    if (this.inList.has(this.host.selfId)) throw new Error('probe: self is in the probe list');
    if (this.active !== undefined && this.active.ackDeadlineMs > this.active.endMs) {
      throw new Error('probe: ack deadline after the end of the probe period');
    }
  }

  private start(nowMs: number): void {
    const target = this.nextTarget();
    const periodMs = this.awareness.scaleMs(this.config.probeIntervalMs);
    this.nextProbeAtMs = nowMs + periodMs;
    if (target === undefined) return;
    const timeoutMs = Math.min(periodMs, this.awareness.scaleMs(this.config.probeTimeoutMs));
    const seq = this.host.nextSeq();
    this.active = {
      seq,
      target: target.id,
      ackDeadlineMs: nowMs + timeoutMs,
      endMs: nowMs + periodMs,
      indirect: false,
      expectedNacks: 0,
      nacks: 0,
    };
    this.counters.probesSent++;
    this.host.send(target.id, target.address, {
      t: 'ping',
      seq,
      target: target.id,
      suspect: target.status === 'suspect',
    });
  }

  private sendIndirect(p: ActiveProbe): void {
    p.indirect = true;
    const target = this.host.member(p.target);
    if (target === undefined || !isLive(target.status)) return;
    const relays = this.host.pickAlive(this.config.indirectChecks, [this.host.selfId, p.target]);
    p.expectedNacks = relays.length;
    for (const r of relays) {
      this.counters.indirectProbesSent++;
      this.host.send(r.id, r.address, {
        t: 'ping-req',
        seq: p.seq,
        target: p.target,
        targetAddress: target.address,
      });
    }
  }

  private finish(p: ActiveProbe, nowMs: number): void {
    this.active = undefined;
    this.counters.probesFailed++;
    // Lifeguard: relays that did not even nack point at our own links or host being the problem.
    this.awareness.apply(p.expectedNacks > 0 ? p.expectedNacks - p.nacks : 1);
    this.host.probeFailed(p.target, nowMs);
  }

  private tickRelays(nowMs: number): void {
    const expired: number[] = [];
    for (const [seq, r] of this.relays) {
      if (!r.nacked && nowMs >= r.nackAtMs) {
        r.nacked = true;
        this.host.send(r.requester, r.requesterAddress, { t: 'nack', seq: r.origSeq });
      }
      if (nowMs >= r.expireAtMs) expired.push(seq);
    }
    for (const seq of expired) this.relays.delete(seq);
  }

  /** The next alive or suspect member in round-robin order; reshuffles when the list runs out. */
  private nextTarget(): Member | undefined {
    for (let pass = 0; pass < 2; pass++) {
      while (this.index < this.list.length) {
        const id = this.list[this.index++] as NodeId;
        const m = this.host.member(id);
        if (m !== undefined && isLive(m.status)) return m;
      }
      this.list = [];
      for (const m of this.host.members()) {
        if (m.id !== this.host.selfId && isLive(m.status)) this.list.push(m.id);
      }
      shuffle(this.list, this.rng);
      this.index = 0;
      this.inList.clear();
      for (const id of this.list) this.inList.add(id);
    }
    return undefined;
  }
}
