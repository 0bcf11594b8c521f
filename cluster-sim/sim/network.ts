// The simulated network between agents. The cores' messages (membership probes, Raft) behave like
// datagrams on a faulty LAN: each may be lost, duplicated or delayed by a random amount, which also
// reorders them; the cores must cope with all of that. The agent's own RPCs (forwarded writes and
// reads, replica fetches) ride reliable streams as in the agent: loss costs retransmission time.
// Reachability is decided at delivery time by the partitions in force then.
//
// Gossip (the gossipsub topic) is modelled as a reliable broadcast within what the publisher can
// reach: gossipsub runs over TCP streams and repairs lost messages with IHAVE/IWANT, so a message
// reaches every connected agent, after a number of hops that grows with log(N) (mesh degree 6).
// Agents that are cut off miss it; push-pull anti-entropy and replica fetches are the backstop,
// as in the real agent.
import type { SeededRng } from '../../src/core/rand.js';

export type NodeId = string;

export interface DelayModel {
  /** Fixed part of a one-way delay. */
  baseMs: number;
  /** Uniform extra in [0, jitterMs). */
  jitterMs: number;
  /** Probability of a slow message, and the mean of its extra (exponential) delay. */
  tailRate: number;
  tailMeanMs: number;
}

export const LAN_DELAY: DelayModel = { baseMs: 0.2, jitterMs: 0.8, tailRate: 0.01, tailMeanMs: 20 };

/** Mesh degree of the gossip overlay (gossipsub D). */
const GOSSIP_DEGREE = 6;

export class Network {
  lossRate = 0;
  dupRate = 0;
  delay: DelayModel = LAN_DELAY;
  /** Partition group of each node; nodes in different groups cannot talk. Absent = group 0. */
  private readonly group = new Map<NodeId, number>();
  /** One-way cuts: messages from a member of `from` to a member of `to` are dropped. */
  private oneWay: Array<{ from: ReadonlySet<NodeId>; to: ReadonlySet<NodeId> }> = [];
  /** Nodes cut off from everyone except one peer. */
  private readonly bridged = new Map<NodeId, NodeId>();

  constructor(private readonly rng: SeededRng) {}

  /** Symmetric partition: each group talks only within itself; nodes not listed form group 0. */
  partition(groups: NodeId[][]): void {
    this.group.clear();
    groups.forEach((g, i) => {
      for (const id of g) this.group.set(id, i + 1);
    });
  }

  /** Asymmetric partition: `from` cannot reach `to`, the other direction still works. */
  cutOneWay(from: NodeId[], to: NodeId[]): void {
    this.oneWay.push({ from: new Set(from), to: new Set(to) });
  }

  /** `node` can talk only with `peer` (a node behind a single working link). */
  bridge(node: NodeId, peer: NodeId): void {
    this.bridged.set(node, peer);
  }

  heal(): void {
    this.group.clear();
    this.oneWay = [];
    this.bridged.clear();
  }

  get partitioned(): boolean {
    return this.group.size > 0 || this.oneWay.length > 0 || this.bridged.size > 0;
  }

  /** Whether `id` is on the wrong side of any partition rule right now. */
  affected(id: NodeId): boolean {
    if (this.group.has(id) || this.bridged.has(id)) return true;
    if (this.group.size > 0) return true; // everyone is in some group while a partition holds
    return this.oneWay.some((r) => r.from.has(id) || r.to.has(id));
  }

  canReach(from: NodeId, to: NodeId): boolean {
    if ((this.group.get(from) ?? 0) !== (this.group.get(to) ?? 0)) return false;
    const bf = this.bridged.get(from);
    if (bf !== undefined && bf !== to) return false;
    const bt = this.bridged.get(to);
    if (bt !== undefined && bt !== from) return false;
    for (const r of this.oneWay) if (r.from.has(from) && r.to.has(to)) return false;
    return true;
  }

  /** Delays of the copies of one point-to-point message that survive: [] lost, two when duplicated. */
  p2pDelays(): number[] {
    if (this.rng.next() < this.lossRate) return [];
    const d = this.oneDelay();
    return this.rng.next() < this.dupRate ? [d, this.oneDelay()] : [d];
  }

  /**
   * Delay of a message on a reliable stream (the agent's RPCs: forwarded writes, reads, fetches).
   * TCP does not lose or duplicate: a lost segment costs a retransmission timeout (200 ms, doubling
   * on each further loss, at most 6 times before the connection would be reset and the RPC lost).
   */
  streamDelay(): number | undefined {
    let d = this.oneDelay();
    let rtoMs = 200;
    for (let tries = 0; this.rng.next() < this.lossRate; tries++) {
      if (tries >= 6) return undefined;
      d += rtoMs;
      rtoMs *= 2;
    }
    return d;
  }

  /** Delay of a gossip message to one recipient among `n` agents: a random number of overlay hops. */
  gossipDelay(n: number): number {
    const hopsMax = Math.max(1, Math.ceil(Math.log(Math.max(2, n)) / Math.log(GOSSIP_DEGREE)));
    const hops = 1 + Math.floor(this.rng.next() * hopsMax);
    let d = 0;
    for (let h = 0; h < hops; h++) d += this.oneDelay() + 0.5; // +0.5 ms per hop for the relay's work
    return d;
  }

  private oneDelay(): number {
    const m = this.delay;
    let d = m.baseMs + this.rng.next() * m.jitterMs;
    if (m.tailRate > 0 && this.rng.next() < m.tailRate) d += -Math.log(1 - this.rng.next()) * m.tailMeanMs;
    return d;
  }
}
