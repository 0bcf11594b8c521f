// One agent's Raft side in the simulator: the real RaftNode core and the real StateMachine, driven
// the way src/raft/service.ts drives them (persist, send, apply, read states, in that order; a
// snapshot every `snapshotEveryEntries` applied entries; replicas take no ticks and send no append
// responses, learn the leader from its batches and forget it when it falls silent), over the
// simulated disk and network. Readys are handled synchronously, so the disk write always precedes
// the sends.
import { Packr } from 'msgpackr';
import { FailedSince, nextConfChange } from '../../src/core/raft/autopilot.js';
import {
  type BatchAction,
  type CommitBatch,
  FETCH_ENTRIES_MAX,
  type FetchReply,
  fetchReplyToMessage,
  fetchStart,
  fetchWantsMore,
  GAP_WAIT_MS,
  HEARTBEAT_MS,
  HELD_BATCHES_MAX,
  HeldBatches,
  heartbeatBatch,
  LeaderSilence,
  onCommitBatch,
  planBatches,
} from '../../src/core/raft/fanout.js';
import type { RaftInit, RaftNode } from '../../src/core/raft/raft.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  Message,
  NodeId,
  RaftConfig,
  Ready,
} from '../../src/core/raft/types.js';
import type { SeededRng } from '../../src/core/rand.js';
import { type ApplyResult, StateMachine } from '../../src/core/state/state-machine.js';
import { entryKey, type PersistedLog, persistedLog, type RaftSafety } from '../check/raft-safety.js';
import { appendEntries, compactTo, installSnapshot, type SimDisk } from './disk.js';

// The agent's codec settings (src/wire/codec.ts), so commands and snapshots are real bytes.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'number' });
export const encodeCommand = (v: unknown): Uint8Array => packr.pack(v);

/** Pending client work on one agent, bounded like the agent's (PROPOSALS_PENDING_MAX and friends). */
const PENDING_MAX = 4_096;
/** Rounds of fetching per detected gap (as the agent's FETCH_ROUNDS_MAX). */
const FETCH_ROUNDS_MAX = 64;
/** Batches are coalesced this long before the leader publishes them (the agent's COALESCE_MS). */
const COALESCE_MS = 2;
/** Autopilot round and replica heartbeat periods (the agent's). */
export const AUTOPILOT_EVERY_MS = 1_000;
export const FANOUT_HEARTBEAT_MS = HEARTBEAT_MS;

/** What the host needs from its agent and the world. */
export interface RaftHostEnv {
  id: NodeId;
  config: RaftConfig;
  rng: SeededRng;
  disk: SimDisk;
  bootstrapConf: ConfState;
  safety: RaftSafety;
  snapshotEveryEntries: number;
  voterTarget: number;
  deadVoterMs: number;
  /** Make a RaftNode: the real one, or a deliberately broken copy in planted-bug tests. */
  makeRaft: (init: RaftInit) => RaftNode;
  sendRaft(m: Message): void;
  sendFetch(to: NodeId, from: number): void;
  publishBatch(b: CommitBatch): void;
  /** Run `fn` after `ms` of this agent's time, unless it crashed meanwhile. */
  after(ms: number, fn: () => void): void;
  localNowMs(): number;
  /** Gossip view for autopilot, and whether any live agent is a replica. */
  autopilotMembers(): Map<
    NodeId,
    { id: NodeId; status: 'alive' | 'suspect' | 'failed' | 'left'; zone: string }
  >;
  hasReplicas(): boolean;
  onRoleChange(role: string, term: number, leader: NodeId): void;
  onApplied(index: number): void;
}

type Waiter = { index: number; run: () => void };
type Proposal = { term: number; done: (r: ApplyResult | undefined) => void };

export class SimRaftHost {
  readonly raft: RaftNode;
  sm: StateMachine;
  private readonly proposals = new Map<number, Proposal>();
  private readonly reads = new Map<string, (index: number | undefined) => void>();
  private waiters: Waiter[] = [];
  private readSeq = 0;
  private appliedSinceSnapshot = 0;
  private appliedTerm = 0;
  private pending: Entry[] = [];
  private pendingPrevTerm = 0;
  private flushScheduled = false;
  private batchSeq = 0;
  private fetchRounds = 0;
  private fetching = false;
  /** First index asked for by the fetch in flight: answers to other requests are stale. */
  private fetchFromIndex = 0;
  private readonly failedSince = new FailedSince();
  private readonly held = new HeldBatches();
  private readonly leaderSilence = new LeaderSilence();
  private role = 'follower';
  private member = false;
  readonly counters = { raftSent: 0, batchesPublished: 0, fetchesServed: 0, fetches: 0, snapshots: 0 };
  private readonly log: PersistedLog;

  constructor(private readonly env: RaftHostEnv) {
    const d = env.disk.state;
    this.sm = d.snapshot ? StateMachine.restore(packr.unpack(d.snapshot.data)) : new StateMachine();
    this.appliedTerm = d.snapshot?.meta.term ?? 0;
    this.raft = env.makeRaft({
      id: env.id,
      config: env.config,
      rng: env.rng,
      restore: {
        hardState: { ...d.hardState },
        snapshot: d.snapshot?.meta,
        entries: [...d.entries],
        initialConf: env.bootstrapConf,
        applied: d.snapshot?.meta.index ?? 0,
        ...(d.snapshot ? { snapshotData: d.snapshot.data } : {}),
      },
    });
    this.log = persistedLog(() => env.disk.state);
    if (d.snapshot) this.env.safety.onPersistCommit(env.id, d.hardState.commit);
    this.refreshMember();
    this.flush();
  }

  get isLeader(): boolean {
    return this.role === 'leader';
  }

  /** Voter or learner (not a replica); refreshed after every Ready, since status() is not free. */
  isMember(): boolean {
    return this.member;
  }

  private refreshMember(): void {
    const c = this.raft.status().conf;
    this.member = c.voters.includes(this.env.id) || c.learners.includes(this.env.id);
  }

  /** A Raft tick (the agent's 50 ms timer); replicas take none. */
  tick(): void {
    if (!this.isMember()) return;
    this.raft.tick();
    this.flush();
  }

  step(m: Message): void {
    this.raft.step(m);
    this.flush();
  }

  /** Propose on this node (it must lead); `done` gets the apply result, or undefined if superseded. */
  propose(cmd: unknown, done: (r: ApplyResult | undefined) => void): string | undefined {
    if (this.proposals.size >= PENDING_MAX) return 'overloaded';
    const r = this.raft.propose(encodeCommand(cmd));
    if ('code' in r) return r.code;
    this.proposals.set(r.index, { term: r.term, done });
    this.flush();
    return undefined;
  }

  proposeConfChange(cc: ConfChange): string | undefined {
    const r = this.raft.proposeConfChange(cc);
    this.flush();
    return 'code' in r ? r.code : undefined;
  }

  campaign(): void {
    this.raft.campaign();
    this.flush();
  }

  transferLeader(to: NodeId): void {
    this.raft.transferLeader(to);
    this.flush();
  }

  /** ReadIndex on this node (it must lead): `done` gets the index to wait for, or undefined. */
  readIndex(done: (index: number | undefined) => void): string | undefined {
    if (this.reads.size >= PENDING_MAX) return 'overloaded';
    const ctx = `${this.env.id}-${++this.readSeq}`;
    const err = this.raft.readIndex(ctx);
    if (err) return err.code;
    this.reads.set(ctx, done);
    this.env.after(5_000, () => {
      const r = this.reads.get(ctx);
      this.reads.delete(ctx);
      r?.(undefined);
    });
    this.flush();
    return undefined;
  }

  /** Run `fn` once this agent has applied `index` (bounded: dropped when too many wait). */
  whenApplied(index: number, fn: () => void): void {
    if (this.sm.appliedIndex >= index) {
      fn();
      return;
    }
    if (this.waiters.length < PENDING_MAX) this.waiters.push({ index, run: fn });
  }

  // ---- replica fan-out ---------------------------------------------------------------------------

  onBatch(b: CommitBatch): void {
    const action = this.decide(b);
    if (action.do === 'append' || action.do === 'heartbeat') {
      this.stepBatch(action.msg, b.leader);
      this.releaseHeld();
    } else if (action.do === 'fetch') {
      this.held.hold(b, this.env.localNowMs());
      this.maybeFetch(action.peer);
      if (!this.fetching) this.env.after(GAP_WAIT_MS, () => this.maybeFetch(action.peer));
    }
  }

  private decide(b: CommitBatch): BatchAction {
    const st = this.raft.status();
    return onCommitBatch(b, { id: st.id, commit: st.commit, member: this.member });
  }

  private stepBatch(msg: Message, leader: NodeId): void {
    this.step(msg);
    // A batch of an older term (a deposed leader's, late) does not make its sender the leader.
    if (this.raft.status().leader === leader) this.leaderSilence.heard(leader, this.env.localNowMs());
  }

  /** A replica forgets a leader that published nothing for LEADER_SILENT_MS (the agent checks
   * every HEARTBEAT_MS); members hear from the leader directly and are left alone. */
  checkLeaderSilence(): void {
    if (this.member || this.isLeader) return;
    if (!this.leaderSilence.silent(this.raft.status().leader, this.env.localNowMs())) return;
    this.raft.forgetLeader();
    this.flush();
  }

  /** Apply held batches that now continue our log. */
  private releaseHeld(): void {
    for (let i = 0; i < HELD_BATCHES_MAX; i++) {
      const b = this.held.next(this.raft.status().commit);
      if (b === undefined) return;
      const action = this.decide(b);
      if (action.do === 'append' || action.do === 'heartbeat') this.stepBatch(action.msg, b.leader);
    }
  }

  private maybeFetch(peer: NodeId): void {
    this.releaseHeld();
    if (this.fetching || !this.held.shouldFetch(this.env.localNowMs())) return;
    this.fetchRounds = 0;
    this.fetchFrom(peer);
  }

  private fetchFrom(peer: NodeId): void {
    this.fetching = true;
    this.counters.fetches++;
    this.fetchFromIndex = fetchStart(this.raft.status().commit);
    this.env.sendFetch(peer, this.fetchFromIndex);
    const round = ++this.fetchRounds;
    // A lost request or answer: give up this round; the next batch or heartbeat starts another.
    this.env.after(2_000, () => {
      if (this.fetchRounds === round) this.fetching = false;
    });
  }

  /** The answer to the fetch that asked from index `from` (the agent matches answers by request id). */
  onFetchReply(peer: NodeId, from: number, res: FetchReply | undefined): void {
    if (!this.fetching || from !== this.fetchFromIndex) return;
    if (res === undefined) {
      // Refused (no longer the leader): stop; the next batch names the current leader.
      this.fetching = false;
      return;
    }
    const msg = fetchReplyToMessage(res, peer, this.env.id, from - 1);
    this.step(msg);
    this.releaseHeld();
    if (fetchWantsMore(msg) && this.fetchRounds < FETCH_ROUNDS_MAX) this.fetchFrom(peer);
    else {
      this.fetching = false;
      this.held.fetched(this.env.localNowMs());
    }
  }

  /** Serve a replica's fetch from this node's disk, as the agent serves `fetch` from LevelDB. The
   * answer becomes an append from us at our term, so only a leader answers (as in the agent). */
  serveFetch(from: number): FetchReply | undefined {
    if (!this.isLeader) return undefined;
    this.counters.fetchesServed++;
    const st = this.raft.status();
    const d = this.env.disk.state;
    const snapIndex = d.snapshot?.meta.index ?? 0;
    if (from <= snapIndex) return { term: st.term, snapshot: d.snapshot };
    const entries = d.entries
      .filter((e) => e.index >= from && e.index <= st.commit)
      .slice(0, FETCH_ENTRIES_MAX);
    const prevTerm = this.log.termAt(from - 1);
    return { term: st.term, prevTerm: Math.max(prevTerm, 0), entries, commit: st.commit };
  }

  heartbeat(): void {
    if (!this.isLeader) return;
    const st = this.raft.status();
    this.publish(heartbeatBatch(st.id, st.term, st.commit));
  }

  private publish(b: Omit<CommitBatch, 'seq'>): void {
    this.counters.batchesPublished++;
    this.env.publishBatch({ ...b, seq: ++this.batchSeq });
  }

  // ---- autopilot -----------------------------------------------------------------------------------

  autopilot(): void {
    if (!this.isLeader) return;
    const st = this.raft.status();
    const members = this.env.autopilotMembers();
    const now = this.env.localNowMs();
    this.failedSince.observe(st, members, now);
    const cc = nextConfChange(st, members, this.failedSince, now, {
      self: this.env.id,
      voters: this.env.voterTarget,
      deadVoterMs: this.env.deadVoterMs,
    });
    if (cc) this.proposeConfChange(cc);
  }

  // ---- Ready handling ------------------------------------------------------------------------------

  flush(): void {
    for (let round = 0; round < 64 && this.raft.hasReady(); round++) {
      const rd = this.raft.ready();
      this.persist(rd);
      const replica = !this.member;
      for (const m of rd.messages) {
        if (replica && (m.t === 'append-resp' || m.t === 'heartbeat-resp')) continue;
        this.counters.raftSent++;
        this.env.sendRaft(m);
      }
      this.apply(rd.committed);
      for (const rs of rd.readStates) {
        const r = this.reads.get(rs.ctx);
        this.reads.delete(rs.ctx);
        r?.(rs.index);
      }
      if (rd.softState) {
        this.role = rd.softState.role;
        const st = this.raft.status();
        if (this.role === 'leader') this.env.safety.onBecomeLeader(this.env.id, st.term, this.log);
        this.env.onRoleChange(this.role, st.term, rd.softState.leader);
      }
      this.raft.advance(rd);
      const st = this.raft.status();
      this.member = st.conf.voters.includes(this.env.id) || st.conf.learners.includes(this.env.id);
      this.env.safety.onStatus(st);
      this.maybeSnapshot();
    }
  }

  private persist(rd: Ready): void {
    const disk = this.env.disk;
    if (rd.snapshot) {
      const s = rd.snapshot;
      disk.write((d) => installSnapshot(d, s), true);
      this.sm = StateMachine.restore(packr.unpack(s.data));
      this.appliedTerm = s.meta.term;
      this.appliedSinceSnapshot = 0;
      this.env.safety.onSnapshot(this.env.id, s.meta.index, s.data);
      this.env.onApplied(this.sm.appliedIndex);
    }
    if (rd.entries.length > 0) {
      const entries = rd.entries;
      disk.write((d) => appendEntries(d, entries), true);
      this.env.safety.onPersistEntries(this.env.id, entries, this.log);
    }
    if (rd.hardState) {
      const hs = { ...rd.hardState };
      const prev = disk.state.hardState;
      // Like the agent: a hard state that only moves the commit index is written without a sync.
      const commitOnly = prev.term === hs.term && prev.vote === hs.vote;
      disk.write(
        (d) => {
          d.hardState = hs;
        },
        !commitOnly || rd.entries.length > 0,
      );
      this.env.safety.onPersistCommit(this.env.id, hs.commit);
    }
  }

  private apply(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const prevTerm = this.appliedTerm;
    for (const e of entries) {
      if (e.index <= this.sm.appliedIndex) continue; // already in a restored snapshot
      let result: ApplyResult = { ok: true, index: e.index };
      if (e.type === 'normal' && e.data.length > 0) result = this.sm.apply(e.index, safeUnpack(e.data));
      else this.sm.skip(e.index);
      this.env.safety.onApply(this.env.id, e.index, entryKey(e));
      this.appliedTerm = e.term;
      this.appliedSinceSnapshot++;
      const p = this.proposals.get(e.index);
      if (p) {
        this.proposals.delete(e.index);
        p.done(p.term === e.term ? result : undefined);
      }
    }
    this.env.onApplied(this.sm.appliedIndex);
    if (this.waiters.length > 0) {
      const applied = this.sm.appliedIndex;
      const ready = this.waiters.filter((w) => w.index <= applied);
      this.waiters = this.waiters.filter((w) => w.index > applied);
      for (const w of ready) w.run();
    }
    if (this.isLeader && this.env.hasReplicas()) {
      if (this.pending.length === 0) this.pendingPrevTerm = prevTerm;
      for (const e of entries) this.pending.push(e);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        this.env.after(COALESCE_MS, () => this.flushBatches());
      }
    }
  }

  private flushBatches(): void {
    this.flushScheduled = false;
    const entries = this.pending;
    this.pending = [];
    if (entries.length === 0 || !this.isLeader) return;
    const st = this.raft.status();
    for (const b of planBatches(entries, this.pendingPrevTerm, st.id, st.term)) this.publish(b);
  }

  private maybeSnapshot(): void {
    if (this.appliedSinceSnapshot < this.env.snapshotEveryEntries) return;
    const index = this.sm.appliedIndex;
    const data = packr.pack(this.sm.snapshot());
    const meta = this.raft.compact(index, data);
    this.appliedSinceSnapshot = 0;
    if (meta === undefined) return;
    const snap = { meta, data };
    this.env.safety.onSnapshot(this.env.id, index, data);
    this.env.disk.write((d) => compactTo(d, snap), true);
    this.counters.snapshots++;
  }
}

function safeUnpack(data: Uint8Array): unknown {
  try {
    return packr.unpack(data);
  } catch {
    return undefined;
  }
}
