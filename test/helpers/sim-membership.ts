// A small deterministic harness for the membership core: N Membership instances, a fake clock,
// and a network that delivers point-to-point messages (with delay, seeded loss, cut links and
// killed nodes) and delivers each published gossip batch to every other reachable live node.
// Everything random comes from the seed, so a run is reproducible.
import { DEFAULT_MEMBERSHIP_CONFIG, type MembershipConfig } from '../../src/core/membership/config.js';
import { Membership } from '../../src/core/membership/membership.js';
import type { Member, MemberInfo, Message, NodeId, Update } from '../../src/core/membership/types.js';
import { SeededRng } from '../../src/core/rand.js';

export interface SimOptions {
  n: number;
  seed: number;
  config?: Partial<MembershipConfig>;
  /** Point-to-point delay range [min, max] in ms (default [1, 5]). */
  delayMs?: [number, number];
  /** Gossip delivery delay in ms (default 10). */
  gossipDelayMs?: number;
  /** Probability that a point-to-point message is lost (default 0); see also setLossRate(). */
  lossRate?: number;
  /** Start time (default 0). */
  startMs?: number;
}

type Delivery =
  | { at: number; order: number; kind: 'msg'; from: NodeId; to: NodeId; msg: Message }
  | { at: number; order: number; kind: 'gossip'; from: NodeId; to: NodeId; updates: Update[] };

export interface SimNode {
  id: NodeId;
  info: MemberInfo;
  m: Membership;
  up: boolean;
}

const STEPS_MAX = 2_000_000;

export class SimCluster {
  nowMs: number;
  readonly nodes: SimNode[] = [];
  private readonly byId = new Map<NodeId, SimNode>();
  readonly config: MembershipConfig;
  /** One line per member event, in delivery order: "t node: member previous→status@inc". */
  readonly trace: string[] = [];
  /** Point-to-point messages delivered, by type (for assertions on traffic). */
  readonly delivered = new Map<string, number>();
  private readonly net: SeededRng;
  private queue: Delivery[] = [];
  private order = 0;
  private readonly cut = new Set<string>();
  private readonly isolated = new Set<NodeId>();
  private readonly deaf = new Set<NodeId>();
  private readonly opts: Required<Omit<SimOptions, 'config'>>;

  constructor(opts: SimOptions) {
    this.opts = { delayMs: [1, 5], gossipDelayMs: 10, lossRate: 0, startMs: 0, ...opts };
    this.nowMs = this.opts.startMs;
    this.config = { ...DEFAULT_MEMBERSHIP_CONFIG, ...opts.config };
    this.net = new SeededRng(opts.seed ^ 0x5eed);
    for (let i = 0; i < opts.n; i++) this.addNode(i, 0);
  }

  static id(i: number): NodeId {
    return `n${i}`;
  }

  node(id: NodeId): SimNode {
    const n = this.byId.get(id);
    if (n === undefined) throw new Error(`sim: no node ${id}`);
    return n;
  }

  /** Every node except the first push-pulls with the first one (a join through one seed). */
  joinAll(): void {
    const seed = this.nodes[0] as SimNode;
    for (const n of this.nodes.slice(1)) n.m.pushPull(seed.id, seed.info.address, true, this.nowMs);
    this.flush();
  }

  /** Change the point-to-point loss rate from now on (e.g. after a clean join). */
  setLossRate(rate: number): void {
    this.opts.lossRate = rate;
  }

  /** Stop a node: it receives nothing and sends nothing more (a crash). */
  kill(id: NodeId): void {
    this.node(id).up = false;
  }

  /** A crashed node comes back with a fresh state machine at a higher incarnation and rejoins via `seed`. */
  restart(id: NodeId, incarnation: number, seed: NodeId): void {
    const n = this.node(id);
    n.m = new Membership({
      self: n.info,
      incarnation,
      config: this.config,
      rng: new SeededRng(this.opts.seed * 7919 + incarnation + this.nodes.indexOf(n)),
      nowMs: this.nowMs,
    });
    n.up = true;
    const s = this.node(seed);
    n.m.pushPull(s.id, s.info.address, true, this.nowMs);
    this.flush();
  }

  /** Cut (or restore) the point-to-point link between a and b, both directions. Gossip still flows. */
  cutLink(a: NodeId, b: NodeId, isCut = true): void {
    for (const k of [`${a}|${b}`, `${b}|${a}`]) {
      if (isCut) this.cut.add(k);
      else this.cut.delete(k);
    }
  }

  /** Isolate a node from everyone (messages and gossip) without stopping it, or heal it. */
  isolate(id: NodeId, isIsolated = true): void {
    if (isIsolated) this.isolated.add(id);
    else this.isolated.delete(id);
  }

  /** Drop (or again deliver) gossip to a node, as while it is not yet in the topic's mesh. */
  deafen(id: NodeId, isDeaf = true): void {
    if (isDeaf) this.deaf.add(id);
    else this.deaf.delete(id);
  }

  /** Advance the clock to `untilMs`, delivering messages and ticking nodes at their deadlines. */
  runUntil(untilMs: number): void {
    for (let steps = 0; ; steps++) {
      if (steps > STEPS_MAX) throw new Error('sim: too many steps (a deadline that does not advance?)');
      let t = this.queue[0]?.at ?? Number.POSITIVE_INFINITY;
      for (const n of this.nodes) {
        const d = n.up ? n.m.nextDeadlineMs() : undefined;
        if (d !== undefined) t = Math.min(t, d);
      }
      if (t > untilMs) break;
      this.nowMs = Math.max(this.nowMs, t);
      const touched = new Set<SimNode>();
      let due = 0;
      while (due < this.queue.length && (this.queue[due] as Delivery).at <= this.nowMs) due++;
      for (const d of this.queue.splice(0, due)) {
        const n = this.deliver(d);
        if (n !== undefined) touched.add(n);
      }
      for (const n of this.nodes) {
        const d = n.up ? n.m.nextDeadlineMs() : undefined;
        if (d !== undefined && d <= this.nowMs) {
          touched.add(n);
          n.m.tick(this.nowMs);
          const after = n.m.nextDeadlineMs();
          if (after !== undefined && after <= this.nowMs) {
            throw new Error(`sim: ${n.id} deadline ${after} did not advance past ${this.nowMs}`);
          }
        }
      }
      this.flush(touched);
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
  }

  run(forMs: number): void {
    this.runUntil(this.nowMs + forMs);
  }

  /** What `observer` believes about `subject`. */
  view(observer: NodeId, subject: NodeId): Member | undefined {
    return this.node(observer).m.member(subject);
  }

  /** True when every live node's view of `subject` has `status`. */
  allSee(subject: NodeId, status: Member['status'], except: NodeId[] = []): boolean {
    return this.nodes
      .filter((n) => n.up && !except.includes(n.id) && n.id !== subject)
      .every((n) => n.m.member(subject)?.status === status);
  }

  /** Run until `cond` holds (checked after every ms step of `stepMs`) or `limitMs` passes; returns the time taken. */
  runUntilTrue(cond: () => boolean, limitMs: number, stepMs = 50): number | undefined {
    const start = this.nowMs;
    while (this.nowMs - start <= limitMs) {
      if (cond()) return this.nowMs - start;
      this.run(stepMs);
    }
    return cond() ? this.nowMs - start : undefined;
  }

  /** Drain the output of `nodes` (default: all) into the network, checking their invariants. */
  flush(nodes: Iterable<SimNode> = this.nodes): void {
    for (const n of nodes) {
      if (!n.up) {
        n.m.drain();
        continue;
      }
      n.m.checkInvariants();
      const out = n.m.drain();
      for (const e of out.events) {
        const m = e.member;
        this.trace.push(`${this.nowMs} ${n.id}: ${m.id} ${e.previous ?? '-'}→${m.status}@${m.incarnation}`);
      }
      for (const o of out.messages) {
        if (this.net.next() < this.opts.lossRate) continue;
        const [lo, hi] = this.opts.delayMs;
        const at = this.nowMs + lo + Math.floor(this.net.next() * (hi - lo + 1));
        this.enqueue({ at, order: 0, kind: 'msg', from: n.id, to: o.to, msg: o.msg });
      }
      for (const batch of out.publish) {
        if (batch.length > this.config.updatesPerMessageMax) throw new Error('sim: oversized gossip batch');
        for (const peer of this.nodes) {
          if (peer.id === n.id) continue;
          const at = this.nowMs + this.opts.gossipDelayMs;
          this.enqueue({ at, order: 0, kind: 'gossip', from: n.id, to: peer.id, updates: batch });
        }
      }
    }
  }

  private addNode(i: number, incarnation: number): void {
    const id = SimCluster.id(i);
    const info: MemberInfo = { id, name: id, address: `10.0.0.${i + 1}:7946`, zone: '', meta: {} };
    const m = new Membership({
      self: info,
      incarnation,
      config: this.config,
      rng: new SeededRng(this.opts.seed * 1_000_003 + i),
      nowMs: this.nowMs,
    });
    const node: SimNode = { id, info, m, up: true };
    this.nodes.push(node);
    this.byId.set(id, node);
  }

  private reachable(from: NodeId, to: NodeId, kind: Delivery['kind']): boolean {
    if (this.isolated.has(from) || this.isolated.has(to)) return false;
    if (kind === 'gossip' && this.deaf.has(to)) return false;
    return kind === 'gossip' || !this.cut.has(`${from}|${to}`);
  }

  /** Deliver one message or gossip batch; returns the node that received it. */
  private deliver(d: Delivery): SimNode | undefined {
    const to = this.byId.get(d.to);
    // A message from a node that crashed after sending is still delivered, as on a real network.
    if (to === undefined || !to.up || !this.byId.has(d.from) || !this.reachable(d.from, d.to, d.kind)) {
      return undefined;
    }
    if (d.kind === 'msg') {
      this.delivered.set(d.msg.t, (this.delivered.get(d.msg.t) ?? 0) + 1);
      to.m.receive(d.from, d.msg, this.nowMs);
    } else {
      to.m.receiveGossip(d.from, d.updates, this.nowMs);
    }
    return to;
  }

  private enqueue(d: Delivery): void {
    d.order = this.order++;
    // Stable insertion by (at, order): binary search for the first entry later than `at`.
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.queue[mid] as Delivery).at <= d.at) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, d);
  }
}
