// One simulated agent: the real membership core and a SimRaftHost (the real Raft core and state
// machine), with the agent's glue: its own clock (offset and drift from true time), the 50 ms Raft
// tick for voters and learners, autopilot and replica heartbeats on the leader, a replica's check
// for a silent leader, write forwarding
// and consistent reads (ReadIndex at the leader, then wait until applied locally), and replica
// catch-up. Everything it does to the outside goes through SimWorld.
import type { MembershipConfig } from '../../src/core/membership/config.js';
import { Membership } from '../../src/core/membership/membership.js';
import type {
  MemberEvent,
  MemberInfo,
  Message as MemberMsg,
  Update,
} from '../../src/core/membership/types.js';
import { bootstrapLog } from '../../src/core/raft/bootstrap.js';
import type { CommitBatch, FetchReply } from '../../src/core/raft/fanout.js';
import type { RaftInit, RaftNode } from '../../src/core/raft/raft.js';
import type { RaftConfig, Message as RaftMsg } from '../../src/core/raft/types.js';
import { SeededRng } from '../../src/core/rand.js';
import type { ApplyResult } from '../../src/core/state/state-machine.js';
import type { RaftSafety } from '../check/raft-safety.js';
import { SimDisk } from './disk.js';
import { AUTOPILOT_EVERY_MS, FANOUT_HEARTBEAT_MS, SimRaftHost } from './raft-host.js';

/** A client's request, as the workload issues it to an agent's API. */
export type ClientOp =
  | { op: 'read'; key: string }
  | { op: 'write'; key: string; value: string }
  | { op: 'delete'; key: string }
  | { op: 'cas'; key: string; value: string; casIndex: number };

/** A definite answer; `undefined` from the agent means no answer ever comes (the client times out). */
export type ClientResult =
  | { ok: true; value?: string | null; modifyIndex?: number }
  | { ok: false; code: string; definite: boolean };

/** Messages between agents. */
export type WireMsg =
  | { k: 'member'; msg: MemberMsg }
  | { k: 'raft'; msg: RaftMsg }
  | { k: 'propose'; id: number; cmd: unknown }
  | { k: 'propose-resp'; id: number; res: ApplyResult | undefined; err?: string }
  | { k: 'read-index'; id: number }
  | { k: 'read-index-resp'; id: number; index: number | undefined }
  | { k: 'conf-remove'; node: string }
  | { k: 'fetch'; from: number }
  | { k: 'fetch-resp'; from: number; res: FetchReply | undefined };

export type GossipMsg = { k: 'members'; updates: Update[] } | { k: 'commits'; batch: CommitBatch };

export interface WorldPort {
  time(): number;
  send(from: SimAgent, to: string, msg: WireMsg): void;
  publish(from: SimAgent, msg: GossipMsg): void;
  /** Schedule at true time; skipped if the agent's epoch changed (it crashed) meanwhile. */
  at(agent: SimAgent, trueMs: number, fn: () => void): void;
  onMemberEvents(observer: SimAgent, events: MemberEvent[]): void;
  onRoleChange(agent: SimAgent, role: string, term: number): void;
  onApplied(agent: SimAgent, index: number): void;
  hasReplicas(): boolean;
  safety: RaftSafety;
}

export interface AgentSettings {
  membership: MembershipConfig;
  raft: RaftConfig;
  raftTickMs: number;
  snapshotEveryEntries: number;
  voterTarget: number;
  deadVoterMs: number;
  seed: number;
  makeRaft: (init: RaftInit) => RaftNode;
  /** Planted bug for checker tests: serve consistent reads from local state without ReadIndex. */
  staleReads: boolean;
}

/** Forwarded requests waiting for the leader's answer; bounded like every queue. */
const FORWARDS_MAX = 4_096;
const FORWARD_TIMEOUT_MS = 5_000;
/** A join without an answer is retried after this long, this many times at most (the agent's --join retry). */
const JOIN_RETRY_MS = 1_000;
const JOIN_ATTEMPTS_MAX = 30;
/** A leaving member waits for a leader this many times 500 ms (the agent's LEADER_WAIT_MS). */
const LEAVE_LEADER_WAITS_MAX = 6;

export class SimAgent {
  up = false;
  pausedUntilMs = 0;
  /** Bumped on every crash: timers of an earlier life never fire. */
  epoch = 0;
  readonly disk = new SimDisk();
  m!: Membership;
  raft!: SimRaftHost;
  leftAtMs: number | undefined;
  /** The seed answered our join. */
  private joined = false;
  private forwards = new Map<number, (v: WireMsg) => void>();
  private forwardSeq = 0;
  private memberTimerAtMs = Number.POSITIVE_INFINITY;
  private ticking = false;
  private leaderTimers = false;
  private replicaTimer = false;

  constructor(
    readonly index: number,
    readonly info: MemberInfo,
    /** Clock offset (ms) and drift (fraction: 1e-4 = 100 ppm) of this agent's clock. */
    readonly clock: { offsetMs: number; drift: number },
    /** `--bootstrap`: this agent starts a new cluster as its only voter. */
    private readonly bootstrap: boolean,
    private readonly s: AgentSettings,
    private readonly w: WorldPort,
  ) {}

  get id(): string {
    return this.info.id;
  }

  localNowMs(): number {
    return this.clock.offsetMs + this.w.time() * (1 + this.clock.drift);
  }

  private trueOf(localMs: number): number {
    return (localMs - this.clock.offsetMs) / (1 + this.clock.drift);
  }

  /** Run `fn` after `ms` of this agent's own clock. */
  after(ms: number, fn: () => void): void {
    this.w.at(this, this.w.time() + ms / (1 + this.clock.drift), fn);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /** Start (or restart from disk): a new incarnation, Raft restored from what was synced. */
  start(): void {
    this.up = true;
    this.leftAtMs = undefined;
    this.forwards = new Map();
    this.memberTimerAtMs = Number.POSITIVE_INFINITY;
    this.ticking = false;
    this.leaderTimers = false;
    this.replicaTimer = false;
    const d = this.disk.state;
    const fresh = d.hardState.term === 0 && d.entries.length === 0 && d.snapshot === undefined;
    if (fresh && this.bootstrap) {
      // As the agent does: the initial configuration goes into the log, synced, before Raft starts.
      const b = bootstrapLog([this.id]);
      this.disk.write((x) => {
        x.hardState = b.hardState;
        x.entries = b.entries;
      }, true);
    }
    const incarnation = this.disk.state.incarnation + 1;
    this.disk.write((d) => {
      d.incarnation = incarnation;
    }, true);
    const seed = (this.s.seed * 7919 + this.index * 104_729 + this.epoch * 31) >>> 0;
    this.m = new Membership({
      self: this.info,
      incarnation,
      config: this.s.membership,
      rng: new SeededRng(seed),
      nowMs: this.localNowMs(),
    });
    this.raft = new SimRaftHost({
      id: this.id,
      config: this.s.raft,
      rng: new SeededRng(seed ^ 0x5a5a5a5a),
      disk: this.disk,
      bootstrapConf: { voters: [], learners: [] },
      safety: this.w.safety,
      snapshotEveryEntries: this.s.snapshotEveryEntries,
      voterTarget: this.s.voterTarget,
      deadVoterMs: this.s.deadVoterMs,
      makeRaft: this.s.makeRaft,
      sendRaft: (msg) => this.w.send(this, msg.to, { k: 'raft', msg }),
      sendFetch: (to, from) => this.w.send(this, to, { k: 'fetch', from }),
      publishBatch: (batch) => this.w.publish(this, { k: 'commits', batch }),
      after: (ms, fn) => this.after(ms, fn),
      localNowMs: () => this.localNowMs(),
      autopilotMembers: () => new Map(this.m.members().map((x) => [x.id, x])),
      hasReplicas: () => this.w.hasReplicas(),
      onRoleChange: (role, term) => {
        this.w.onRoleChange(this, role, term);
        this.startTimers();
      },
      onApplied: (index) => this.w.onApplied(this, index),
    });
    if (fresh && this.bootstrap) this.raft.campaign();
    this.afterInput();
    this.startTimers();
  }

  /** kill -9: memory gone, un-synced writes gone. */
  crash(): void {
    this.up = false;
    this.epoch++;
    this.pausedUntilMs = 0;
    this.disk.crash();
  }

  /** Join through a seed: a push-pull, retried (as `--join` retries) until the seed answers. */
  join(pickSeed: () => SimAgent | undefined, attempt = 1): void {
    const seed = pickSeed();
    if (seed === undefined) return;
    this.joined = false;
    this.m.pushPull(seed.id, seed.info.address, true, this.localNowMs());
    this.afterInput();
    if (attempt < JOIN_ATTEMPTS_MAX) {
      this.after(JOIN_RETRY_MS, () => {
        if (!this.joined) this.join(pickSeed, attempt + 1);
      });
    }
  }

  /** Graceful leave: a voter or learner asks the leader to remove it first (waiting up to 3 s for
   * a leader to exist, as the agent does), then the gossip leave. `onDone` runs once it has left. */
  leave(onDone: () => void, attempt = 1): void {
    if (this.raft.isMember()) {
      const st = this.raft.raft.status();
      if (this.raft.isLeader) {
        const other = st.conf.voters.find((v) => v !== this.id);
        if (other) this.raft.transferLeader(other);
      } else if (st.leader) this.w.send(this, st.leader, { k: 'conf-remove', node: this.id });
      else if (attempt < LEAVE_LEADER_WAITS_MAX) {
        this.after(500, () => this.leave(onDone, attempt + 1));
        return;
      }
    }
    this.after(500, () => {
      this.m.leave(this.localNowMs());
      this.afterInput();
      this.leftAtMs = this.w.time();
      onDone();
    });
  }

  // ---- timers ----------------------------------------------------------------------------------

  private startTimers(): void {
    if (!this.ticking && this.raft.isMember()) {
      this.ticking = true;
      const tick = (): void => {
        if (!this.raft.isMember()) {
          this.ticking = false;
          return;
        }
        this.raft.tick();
        this.after(this.s.raftTickMs, tick);
      };
      this.after(this.s.raftTickMs, tick);
    }
    if (!this.replicaTimer && !this.raft.isMember()) {
      this.replicaTimer = true;
      const check = (): void => {
        if (this.raft.isMember()) {
          this.replicaTimer = false;
          return;
        }
        this.raft.checkLeaderSilence();
        this.after(FANOUT_HEARTBEAT_MS, check);
      };
      this.after(FANOUT_HEARTBEAT_MS, check);
    }
    if (!this.leaderTimers && this.raft.isLeader) {
      this.leaderTimers = true;
      const round = (): void => {
        if (!this.raft.isLeader) {
          this.leaderTimers = false;
          return;
        }
        this.raft.autopilot();
        this.raft.heartbeat();
        this.after(Math.min(AUTOPILOT_EVERY_MS, FANOUT_HEARTBEAT_MS), round);
      };
      this.after(Math.min(AUTOPILOT_EVERY_MS, FANOUT_HEARTBEAT_MS), round);
    }
  }

  /** After any input to the membership core: drain its output and re-arm its timer. */
  afterInput(): void {
    const out = this.m.drain();
    for (const o of out.messages) this.w.send(this, o.to, { k: 'member', msg: o.msg });
    for (const updates of out.publish) this.w.publish(this, { k: 'members', updates });
    if (out.events.length > 0) this.w.onMemberEvents(this, out.events);
    const d = this.m.nextDeadlineMs();
    if (d === undefined) return;
    const atMs = Math.max(this.w.time(), this.trueOf(d));
    if (atMs >= this.memberTimerAtMs) return;
    this.memberTimerAtMs = atMs;
    this.w.at(this, atMs, () => {
      if (this.memberTimerAtMs !== atMs) return; // superseded by an earlier timer
      this.memberTimerAtMs = Number.POSITIVE_INFINITY;
      this.m.tick(Math.max(this.localNowMs(), d));
      this.afterInput();
    });
  }

  // ---- input -----------------------------------------------------------------------------------

  receive(from: string, msg: WireMsg): void {
    switch (msg.k) {
      case 'member':
        if (msg.msg.t === 'push-pull' && msg.msg.reply && msg.msg.join) this.joined = true;
        this.m.receive(from, msg.msg, this.localNowMs());
        this.afterInput();
        return;
      case 'raft':
        this.raft.step(msg.msg);
        this.startTimers();
        return;
      case 'propose': {
        const err = this.raft.propose(msg.cmd, (res) =>
          this.w.send(this, from, { k: 'propose-resp', id: msg.id, res }),
        );
        if (err) this.w.send(this, from, { k: 'propose-resp', id: msg.id, res: undefined, err });
        return;
      }
      case 'read-index': {
        const err = this.raft.readIndex((index) =>
          this.w.send(this, from, { k: 'read-index-resp', id: msg.id, index }),
        );
        if (err) this.w.send(this, from, { k: 'read-index-resp', id: msg.id, index: undefined });
        return;
      }
      case 'conf-remove':
        this.raft.proposeConfChange({ op: 'remove', node: msg.node });
        return;
      case 'fetch':
        this.w.send(this, from, { k: 'fetch-resp', from: msg.from, res: this.raft.serveFetch(msg.from) });
        return;
      case 'fetch-resp':
        this.raft.onFetchReply(from, msg.from, msg.res);
        this.startTimers();
        return;
      case 'propose-resp':
      case 'read-index-resp': {
        const f = this.forwards.get(msg.id);
        this.forwards.delete(msg.id);
        f?.(msg);
        return;
      }
    }
  }

  receiveGossip(from: string, msg: GossipMsg): void {
    if (msg.k === 'members') {
      this.m.receiveGossip(from, msg.updates, this.localNowMs());
      this.afterInput();
    } else {
      this.raft.onBatch(msg.batch);
      this.startTimers();
    }
  }

  // ---- the client API --------------------------------------------------------------------------

  /** Serve a client request. `done` is called at most once; never when the answer is lost. */
  clientOp(op: ClientOp, done: (r: ClientResult) => void): void {
    if (op.op === 'read') {
      this.read(op.key, done);
      return;
    }
    const cmd =
      op.op === 'write'
        ? { op: 'kv-set', key: op.key, value: new TextEncoder().encode(op.value) }
        : op.op === 'delete'
          ? { op: 'kv-delete', key: op.key }
          : { op: 'kv-set', key: op.key, value: new TextEncoder().encode(op.value), cas: op.casIndex };
    const onResult = (res: ApplyResult | undefined, err?: string): void => {
      if (res === undefined) {
        done({ ok: false, code: err ?? 'superseded', definite: true });
        return;
      }
      if (res.ok) {
        done({ ok: true });
        return;
      }
      done({ ok: false, code: res.code, definite: true });
    };
    if (this.raft.isLeader) {
      const err = this.raft.propose(cmd, (res) => onResult(res));
      if (err) done({ ok: false, code: err, definite: true });
      return;
    }
    this.forward({ k: 'propose', id: 0, cmd }, done, (m) => {
      if (m.k === 'propose-resp') onResult(m.res, m.err);
    });
  }

  private read(key: string, done: (r: ClientResult) => void): void {
    const answer = (): void => {
      const e = this.raft.sm.kvGet(key);
      done(
        e === undefined
          ? { ok: true, value: null }
          : { ok: true, value: new TextDecoder().decode(e.value), modifyIndex: e.modifyIndex },
      );
    };
    if (this.s.staleReads) {
      answer();
      return;
    }
    const withIndex = (index: number | undefined): void => {
      if (index === undefined) {
        done({ ok: false, code: 'no-quorum', definite: true });
        return;
      }
      this.raft.whenApplied(index, answer);
    };
    if (this.raft.isLeader) {
      const err = this.raft.readIndex(withIndex);
      if (err) done({ ok: false, code: err, definite: true });
      return;
    }
    this.forward({ k: 'read-index', id: 0 }, done, (m) => {
      if (m.k === 'read-index-resp') withIndex(m.index);
    });
  }

  /** Send to the leader this agent knows; the reply is handled by `onReply`. */
  private forward(
    msg: Extract<WireMsg, { k: 'propose' | 'read-index' }>,
    done: (r: ClientResult) => void,
    onReply: (m: WireMsg) => void,
  ): void {
    const leader = this.raft.raft.status().leader;
    if (!leader) {
      done({ ok: false, code: 'no-leader', definite: true });
      return;
    }
    if (this.forwards.size >= FORWARDS_MAX) {
      done({ ok: false, code: 'overloaded', definite: true });
      return;
    }
    const id = ++this.forwardSeq;
    this.forwards.set(id, onReply);
    this.after(FORWARD_TIMEOUT_MS, () => this.forwards.delete(id));
    this.w.send(this, leader, { ...msg, id });
  }
}
