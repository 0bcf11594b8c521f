// The simulated world: N agents (real cores), one event queue, one simulated network, one seed.
// Nothing here reads the real clock or unseeded randomness, so a seed replays a run event for
// event. The world injects the faults, runs the client workload, watches the checkers, and after
// the fault phase heals everything and checks that the cluster settles.
import { DEFAULT_MEMBERSHIP_CONFIG, type MembershipConfig } from '../../src/core/membership/config.js';
import type { MemberEvent, MemberInfo } from '../../src/core/membership/types.js';
import { DEFAULT_RAFT_CONFIG, type RaftInit, RaftNode } from '../../src/core/raft/raft.js';
import { SeededRng } from '../../src/core/rand.js';
import { RaftSafety, type SafetyViolation } from '../check/raft-safety.js';
import { type AgentSettings, type GossipMsg, SimAgent, type WireMsg, type WorldPort } from './agent.js';
import { DetectionWatch } from './detection.js';
import { EventQueue } from './events.js';
import { type FaultMix, NO_FAULTS } from './faults.js';
import { LAN_DELAY, Network } from './network.js';
import { MembershipViews, Propagation } from './observe.js';
import { Workload, type WorkloadOptions } from './workload.js';

export interface SimOptions {
  nodes: number;
  seed: number;
  /** Simulated time with faults and workload. */
  durationMs: number;
  faults: FaultMix;
  /** After the fault phase: how long the healed cluster gets to settle before the final checks. */
  settleMs?: number;
  /** Agents start over this long (each joins through the first). */
  joinSpreadMs?: number;
  voters?: number;
  workload?: Partial<WorkloadOptions>;
  /** Take a snapshot every this many applied entries (small values exercise snapshot install). */
  snapshotEveryEntries?: number;
  /** A crashed member is expected to be seen failed (not alive or suspect) by all within this. */
  detectBoundMs?: number;
  /** Keep a readable trace of every event (small runs only). */
  trace?: boolean;
  membership?: Partial<MembershipConfig>;
  /** Planted bugs, for the checkers' own tests. */
  makeRaft?: (init: RaftInit) => RaftNode;
  staleReads?: boolean;
}

export interface Counters {
  events: number;
  messages: number;
  messagesLost: number;
  gossipDeliveries: number;
  leaderRaftMsgs: number;
  leaderBatches: number;
  leaderFetchReplies: number;
  leaderChanges: number;
  crashes: number;
  restarts: number;
  pauses: number;
  partitions: number;
  leaves: number;
  falseFailures: number;
  falseFailuresClean: number;
  deferredDropped: number;
}

/** Bounded mailbox of a paused agent (a stalled process's socket buffers). */
const DEFERRED_MAX = 20_000;
/** Faults this recent make a false failure declaration "explained". */
const FAULT_SHADOW_MS = 10_000;

export class SimWorld implements WorldPort {
  nowMs = 0;
  readonly opts: Required<Omit<SimOptions, 'makeRaft' | 'membership' | 'workload'>>;
  readonly agents: SimAgent[] = [];
  private readonly byId = new Map<string, SimAgent>();
  readonly queue = new EventQueue();
  readonly net: Network;
  readonly safety = new RaftSafety();
  readonly views = new MembershipViews();
  readonly propagation = new Propagation();
  readonly workload: Workload;
  readonly rng: SeededRng;
  readonly counters: Counters = {
    events: 0,
    messages: 0,
    messagesLost: 0,
    gossipDeliveries: 0,
    leaderRaftMsgs: 0,
    leaderBatches: 0,
    leaderFetchReplies: 0,
    leaderChanges: 0,
    crashes: 0,
    restarts: 0,
    pauses: 0,
    partitions: 0,
    leaves: 0,
    falseFailures: 0,
    falseFailuresClean: 0,
    deferredDropped: 0,
  };
  /** Crashes awaiting detection by every live agent, and how long each took. */
  readonly detection = new DetectionWatch((id) => this.views.liveCount(id));
  readonly trace: string[] = [];
  private hash = 2166136261;
  /** Last disruption touching each agent (for classifying false failures). */
  readonly lastFaultMs = new Map<string, number>();
  lastPartitionMs = Number.NEGATIVE_INFINITY;
  private readonly deferred = new Map<SimAgent, Array<() => void>>();
  leader: SimAgent | undefined;
  /** The fault phase is over: anything that stops from now on comes back. */
  healed = false;
  /** Time from the last agent's first start until every agent saw every other alive. */
  joinConvergedMs: number | undefined;
  /** When the last agent started for the first time. */
  allStartedMs: number | undefined;
  private startedOnce = 0;
  violation: SafetyViolation | undefined;
  private upCountCache = 0;

  constructor(options: SimOptions) {
    this.opts = {
      settleMs: 60_000,
      joinSpreadMs: Math.min(5_000, 20 * options.nodes),
      voters: 3,
      snapshotEveryEntries: 10_000,
      detectBoundMs: 30_000,
      trace: false,
      staleReads: false,
      ...options,
    };
    this.rng = new SeededRng(options.seed ^ 0x9e3779b9);
    this.net = new Network(new SeededRng(options.seed ^ 0x85ebca6b));
    const f = options.faults ?? NO_FAULTS;
    this.net.lossRate = f.loss;
    this.net.dupRate = f.dup;
    this.net.delay = f.slowMs > 0 ? { ...LAN_DELAY, tailRate: 0.05, tailMeanMs: f.slowMs } : LAN_DELAY;
    const settings: AgentSettings = {
      membership: { ...DEFAULT_MEMBERSHIP_CONFIG, ...options.membership },
      raft: { ...DEFAULT_RAFT_CONFIG },
      raftTickMs: 50,
      snapshotEveryEntries: this.opts.snapshotEveryEntries,
      voterTarget: this.opts.voters,
      deadVoterMs: 5_000,
      seed: options.seed,
      makeRaft: options.makeRaft ?? ((init) => new RaftNode(init)),
      staleReads: this.opts.staleReads,
    };
    const clockRng = new SeededRng(options.seed ^ 0xc2b2ae35);
    for (let i = 0; i < options.nodes; i++) {
      const id = `n${i}`;
      const info: MemberInfo = {
        id,
        name: id,
        address: `10.${(i >> 8) & 255}.${i & 255}.1:7400`,
        zone: '',
        meta: {},
      };
      const clock = {
        offsetMs: f.drift > 0 ? clockRng.next() * 1_000 : 0,
        drift: f.drift > 0 ? (clockRng.next() * 2 - 1) * f.drift : 0,
      };
      const a = new SimAgent(i, info, clock, i === 0, settings, this);
      this.agents.push(a);
      this.byId.set(id, a);
    }
    this.workload = new Workload(
      {
        clients: 6,
        keys: 5,
        thinkMs: 100,
        timeoutMs: 3_000,
        opsMax: 200_000,
        ...options.workload,
      },
      new SeededRng(options.seed ^ 0x27d4eb2f),
      {
        nowMs: () => this.nowMs,
        atGlobal: (t, fn) => this.queue.push(t, fn),
        pickAgent: () => this.pickUp(),
      },
    );
  }

  // ---- WorldPort ---------------------------------------------------------------------------------

  time(): number {
    return this.nowMs;
  }

  send(from: SimAgent, to: string, msg: WireMsg): void {
    this.counters.messages++;
    if (from.raft?.isLeader) {
      if (msg.k === 'raft') this.counters.leaderRaftMsgs++;
      else if (msg.k === 'fetch-resp') this.counters.leaderFetchReplies++;
    }
    const target = this.byId.get(to);
    if (target === undefined) return;
    let delays: number[];
    if (msg.k === 'member' || msg.k === 'raft') delays = this.net.p2pDelays();
    else {
      const d = this.net.streamDelay();
      delays = d === undefined ? [] : [d];
    }
    if (delays.length === 0) this.counters.messagesLost++;
    for (const d of delays) {
      this.queue.push(this.nowMs + d, () => {
        if (!target.up || !this.net.canReach(from.id, to)) return;
        if (this.mustDefer(target)) this.defer(target, () => target.receive(from.id, msg));
        else {
          this.counters.events++;
          target.receive(from.id, msg);
        }
      });
    }
  }

  publish(from: SimAgent, msg: GossipMsg): void {
    if (msg.k === 'commits' && from.raft.isLeader) this.counters.leaderBatches++;
    const n = this.agents.length;
    // One delivery per live agent, each after its own random number of hops, scheduled as one
    // batch (same order of events as one push per delivery; far less queue work at 1,000 agents).
    const targets: SimAgent[] = [];
    const times: number[] = [];
    for (const target of this.agents) {
      if (target === from || !target.up) continue;
      targets.push(target);
      times.push(this.nowMs + this.net.gossipDelay(n));
    }
    this.queue.pushAll(times, (i) => {
      const target = targets[i] as SimAgent;
      if (!target.up || !this.net.canReach(from.id, target.id)) return;
      this.counters.gossipDeliveries++;
      if (this.mustDefer(target)) this.defer(target, () => target.receiveGossip(from.id, msg));
      else {
        this.counters.events++;
        target.receiveGossip(from.id, msg);
      }
    });
  }

  at(agent: SimAgent, trueMs: number, fn: () => void): void {
    const epoch = agent.epoch;
    this.queue.push(trueMs, () => {
      if (agent.epoch !== epoch || !agent.up) return;
      this.deliverTo(agent, fn);
    });
  }

  onMemberEvents(observer: SimAgent, events: MemberEvent[]): void {
    this.views.apply(observer.id, events);
    for (const e of events) {
      const s = e.member;
      if (s.id === observer.id || e.previous === s.status) continue;
      if (this.opts.trace)
        this.note(`${observer.id} sees ${s.id} ${e.previous ?? '-'}→${s.status}@${s.incarnation}`);
      else this.mix(`m${observer.index}:${s.id}:${s.status}:${s.incarnation}`);
      if (s.status === 'failed') {
        const subject = this.byId.get(s.id);
        if (subject?.up && subject.leftAtMs === undefined) {
          this.counters.falseFailures++;
          if (!this.recentlyDisrupted(subject) && !this.recentlyDisrupted(observer))
            this.counters.falseFailuresClean++;
        }
      }
      if (s.status === 'failed' || s.status === 'left') this.detection.check(s.id, this.nowMs);
    }
    if (this.joinConvergedMs === undefined && this.allStartedMs !== undefined && this.membershipConverged()) {
      this.joinConvergedMs = this.nowMs - this.allStartedMs;
    }
  }

  onRoleChange(agent: SimAgent, role: string, term: number): void {
    if (this.opts.trace) this.note(`${agent.id} is ${role} in term ${term}`);
    else this.mix(`r${agent.index}:${role}:${term}`);
    if (role === 'leader') {
      this.counters.leaderChanges++;
      this.leader = agent;
    } else if (this.leader === agent) this.leader = undefined;
  }

  onApplied(agent: SimAgent, index: number): void {
    if (agent.raft?.isLeader) this.propagation.committed(index, this.nowMs);
    this.propagation.applied(agent.id, index, this.upCount(), this.nowMs);
  }

  hasReplicas(): boolean {
    return this.upCount() > this.opts.voters;
  }

  // ---- agents ------------------------------------------------------------------------------------

  agent(id: string): SimAgent {
    const a = this.byId.get(id);
    if (a === undefined) throw new Error(`sim: no agent ${id}`);
    return a;
  }

  upAgents(): SimAgent[] {
    return this.agents.filter((a) => a.up);
  }

  upCount(): number {
    return this.upCountCache;
  }

  private pickUp(): SimAgent | undefined {
    const up = this.upAgents();
    return up.length === 0 ? undefined : up[this.rng.int(up.length)];
  }

  /** Start an agent (first start or restart) and join it through a live agent. */
  startAgent(a: SimAgent): void {
    if (a.up) return;
    const restart = a.epoch > 0 || a.disk.state.incarnation > 0;
    a.start();
    this.upCountCache++;
    this.propagation.disturb();
    if (restart) this.counters.restarts++;
    else if (++this.startedOnce === this.agents.length) this.allStartedMs = this.nowMs;
    this.note(`${a.id} ${restart ? 'restarted' : 'started'}`);
    // The first agent is every other's --join seed while it is up; otherwise any live agent.
    a.join(() => {
      const first = this.agents[0] as SimAgent;
      if (first.up && first !== a) return first;
      const others = this.upAgents().filter((x) => x !== a);
      return others.length === 0 ? undefined : others[this.rng.int(others.length)];
    });
  }

  crashAgent(a: SimAgent): void {
    if (!a.up) return;
    for (const m of a.m.members()) if (m.id !== a.id) this.views.change(m.id, m.status, undefined);
    a.crash();
    this.propagation.disturb();
    this.safety.onCrash(a.id, a.disk.state.hardState.commit);
    this.upCountCache--;
    this.deferred.delete(a);
    if (this.leader === a) this.leader = undefined;
    this.counters.crashes++;
    this.lastFaultMs.set(a.id, this.nowMs);
    this.note(`${a.id} crashed`);
    if (a.leftAtMs === undefined) this.detection.crashed(a.id, this.nowMs);
    this.detection.check(a.id, this.nowMs);
  }

  /** Graceful leave, then the process exits a second later. After healing it comes back at once. */
  leaveAgent(a: SimAgent): void {
    if (!a.up) return;
    this.counters.leaves++;
    this.note(`${a.id} leaves`);
    const epoch = a.epoch;
    a.leave(() => {
      this.queue.push(this.nowMs + 1_000, () => {
        if (!a.up || a.epoch !== epoch) return;
        this.crashAgent(a);
        this.detection.forget(a.id);
        if (this.healed) this.startAgent(a);
      });
    });
  }

  pauseAgent(a: SimAgent, forMs: number): void {
    if (!a.up || a.pausedUntilMs > this.nowMs) return;
    this.counters.pauses++;
    a.pausedUntilMs = this.nowMs + forMs;
    this.lastFaultMs.set(a.id, a.pausedUntilMs);
    this.note(`${a.id} paused for ${Math.round(forMs)} ms`);
    const epoch = a.epoch;
    this.queue.push(a.pausedUntilMs, () => {
      if (a.epoch !== epoch) return;
      a.pausedUntilMs = 0;
      const work = this.deferred.get(a) ?? [];
      this.deferred.delete(a);
      for (const fn of work) if (a.up && a.epoch === epoch) this.run(fn);
    });
  }

  private deliverTo(a: SimAgent, fn: () => void): void {
    if (this.mustDefer(a)) this.defer(a, fn);
    else this.run(fn);
  }

  /** A paused agent: what arrives waits in its buffers until it resumes. */
  private mustDefer(a: SimAgent): boolean {
    return a.pausedUntilMs > this.nowMs;
  }

  private defer(a: SimAgent, fn: () => void): void {
    let q = this.deferred.get(a);
    if (q === undefined) {
      q = [];
      this.deferred.set(a, q);
    }
    if (q.length < DEFERRED_MAX) q.push(fn);
    else this.counters.deferredDropped++;
  }

  private run(fn: () => void): void {
    this.counters.events++;
    fn();
  }

  // ---- checks ------------------------------------------------------------------------------------

  recentlyDisrupted(a: SimAgent): boolean {
    const t = Math.max(this.lastFaultMs.get(a.id) ?? Number.NEGATIVE_INFINITY, this.lastPartitionMs);
    return this.net.partitioned || this.nowMs - t < FAULT_SHADOW_MS;
  }

  /** Every up agent sees every other up agent alive. */
  membershipConverged(): boolean {
    const up = this.upCount();
    if (this.views.aliveTotal < up * (up - 1)) return false;
    return this.upAgents().every((a) => this.views.aliveCount(a.id) === up - 1);
  }

  /** A crashed agent that stayed down longer than the bound must be seen failed by all. */
  checkDetectionBound(): void {
    this.detection.checkBound(
      this.nowMs,
      this.opts.detectBoundMs,
      this.net.partitioned,
      (id) => this.agent(id).up,
    );
  }

  /** Trace line (kept when tracing) folded into the run's hash. */
  note(line: string): void {
    const l = `${this.nowMs.toFixed(3)} ${line}`;
    if (this.opts.trace) this.trace.push(l);
    this.mix(l);
  }

  private mix(s: string): void {
    let h = this.hash;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
    this.hash = h >>> 0;
  }

  get traceHash(): string {
    return this.hash.toString(16).padStart(8, '0');
  }
}
