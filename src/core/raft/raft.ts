// The Raft state machine. CONTRACT (the shell in src/raft depends on exactly these members):
//   new RaftNode({ id, config, rng, restore })      restore: what the shell loaded from disk
//   tick()                                          one logical tick (the shell ticks every tickMs)
//   step(msg)                                       a message from a peer (validated by the shell)
//   propose(data): { index, term } | ProposeError   leader only; an application command
//   proposeConfChange(cc): { index, term } | ProposeError   one change at a time
//   transferLeader(to)                              leader only; returns ProposeError or undefined
//   readIndex(ctx): ProposeError | undefined        leader only; a ReadState with ctx comes out in a Ready
//   campaign()                                      start an election now (bootstrap, tests)
//   hasReady(): boolean; ready(): Ready; advance(rd: Ready): void
//   compact(index, data)                            the shell took a snapshot of the state machine at
//                                                   applied index `index`: drop log entries ≤ index
//   status(): RaftStatus
// Invariants asserted in code: at most one leader per term from this node's view, commit never
// decreases, a leader never overwrites or deletes its own entries, log matching on append.
//
// Layout: core.ts holds the state and role transitions, roles.ts one step function per role,
// replication.ts appends/commit/snapshots, log.ts the in-memory log, progress.ts per-peer flow
// control, quorum.ts majority math, read-only.ts ReadIndex, conf.ts the configuration.
// Additions beyond the contract: RaftRestore.snapshotData, compact() returns the snapshot's meta,
// forgetLeader(), checkInvariants().
import { deriveConf } from './conf.js';
import { checkRaftConfig, Raft } from './core.js';
import { RaftLog } from './log.js';
import { PENDING_READS_MAX } from './read-only.js';
import { flushBroadcast, maybeCommit, sendAppend, sendTimeoutNow, startRead } from './replication.js';
import { stepCandidate, stepFollower, stepLeader } from './roles.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  PeerProgress,
  ProposeError,
  RaftConfig,
  RaftStatus,
  Ready,
  Rng,
  Snapshot,
  SnapshotMeta,
  SoftState,
} from './types.js';

export const DEFAULT_RAFT_CONFIG: Readonly<RaftConfig> = Object.freeze({
  // With the shell's 50 ms tick: heartbeats every 100 ms, elections after 500–1000 ms of silence.
  // etcd's defaults are 100 ms / 1000 ms; a shorter timeout gives faster failover on a LAN and is
  // safe with check-quorum and pre-vote, which keep a slow node from disrupting a healthy leader.
  electionTicks: 10,
  heartbeatTicks: 2,
  preVote: true,
  checkQuorum: true,
  inflightMax: 256,
  appendBytesMax: 1024 * 1024,
  appendEntriesMax: 1024,
  uncommittedEntriesMax: 10_000,
});

/** What the shell restores from disk at start. A fresh node passes an empty log and the bootstrap conf. */
export interface RaftRestore {
  hardState: HardState;
  /** Latest snapshot, if any (its data already loaded into the state machine by the shell). */
  snapshot: Snapshot['meta'] | undefined;
  /** Persisted entries after the snapshot, in order. */
  entries: Entry[];
  /** Configuration when there is neither snapshot nor conf entries (bootstrap). */
  initialConf: ConfState;
  /** Highest index already applied to the state machine (≥ snapshot index). */
  applied: number;
  /** The snapshot's data, so a restarted leader can send it to followers that lag behind it.
   * Without it such followers wait until the next compact(). */
  snapshotData?: Uint8Array;
}

export interface RaftInit {
  id: string;
  config: RaftConfig;
  rng: Rng;
  restore: RaftRestore;
}

export class RaftNode {
  private readonly r: Raft;
  private prevHard: HardState;
  private prevSoft: SoftState;

  constructor(init: RaftInit) {
    checkRaftConfig(init.config);
    if (init.id === '') throw new Error('raft: node id must not be empty');
    const rs = init.restore;
    const snapMeta = rs.snapshot;
    const log = new RaftLog(
      { index: snapMeta?.index ?? 0, term: snapMeta?.term ?? 0 },
      rs.entries,
      rs.hardState.commit,
      rs.applied,
    );
    const base = snapMeta?.conf ?? rs.initialConf;
    const snapshot =
      snapMeta !== undefined && rs.snapshotData !== undefined
        ? { meta: snapMeta, data: rs.snapshotData }
        : undefined;
    this.r = new Raft(init.id, { ...init.config }, init.rng, log, copyConf(base), snapshot);
    if (rs.hardState.term < log.lastTerm()) {
      throw new Error(
        `raft: restored term ${rs.hardState.term} below the last entry's term ${log.lastTerm()}`,
      );
    }
    this.r.term = rs.hardState.term;
    this.r.becomeFollower(rs.hardState.term, '');
    this.r.vote = rs.hardState.vote;
    this.prevHard = this.hardState();
    this.prevSoft = { leader: this.r.lead, role: this.r.role };
  }

  tick(): void {
    this.r.tick();
  }

  /** A message from a peer: common term and vote rules here, then the role's step function. */
  step(m: Message): void {
    const r = this.r;
    if (m.to !== r.id || m.from === r.id) return;
    if (m.term > r.term) {
      if (m.t === 'vote' || m.t === 'pre-vote') {
        // Leader lease: while we hear from a leader, ignore campaigns (unless a leader transfer).
        const inLease = r.cfg.checkQuorum && r.lead !== '' && r.electionElapsed < r.cfg.electionTicks;
        if (!m.transfer && inLease) return;
      }
      if (m.t === 'pre-vote') {
        // Never change our term in response to a pre-vote.
      } else if (m.t === 'pre-vote-resp' && !m.reject) {
        // Granted pre-votes carry the term we will campaign at; the term moves when we win.
      } else {
        const lead = m.t === 'append' || m.t === 'heartbeat' || m.t === 'snapshot' ? m.from : '';
        r.becomeFollower(m.term, lead);
      }
    } else if (m.term < r.term) {
      if ((r.cfg.checkQuorum || r.cfg.preVote) && (m.t === 'heartbeat' || m.t === 'append')) {
        // A stale leader (e.g. one cut off by a partition that we since left behind): tell it our
        // term so it steps down; without check-quorum it would otherwise never learn.
        r.send({ t: 'append-resp', term: r.term, from: r.id, to: m.from, index: 0, reject: false, hint: 0 });
      } else if (m.t === 'pre-vote') {
        r.send({ t: 'pre-vote-resp', term: r.term, from: r.id, to: m.from, reject: true });
      }
      return;
    }
    switch (m.t) {
      case 'vote':
      case 'pre-vote': {
        const resp = m.t === 'vote' ? 'vote-resp' : 'pre-vote-resp';
        const canVote =
          r.vote === m.from || (r.vote === '' && r.lead === '') || (m.t === 'pre-vote' && m.term > r.term);
        // Learners and non-members answer too: their configuration may lag the candidate's, and a
        // vote only counts if the candidate's configuration lists us as a voter.
        if (canVote && r.log.isUpToDate(m.lastIndex, m.lastTerm)) {
          r.send({ t: resp, term: m.term, from: r.id, to: m.from, reject: false });
          if (m.t === 'vote') {
            r.electionElapsed = 0;
            r.vote = m.from;
          }
        } else {
          r.send({ t: resp, term: r.term, from: r.id, to: m.from, reject: true });
        }
        return;
      }
      default:
        if (r.role === 'leader') stepLeader(r, m);
        else if (r.role === 'candidate' || r.role === 'pre-candidate') stepCandidate(r, m);
        else stepFollower(r, m);
    }
  }

  propose(data: Uint8Array): { index: number; term: number } | ProposeError {
    const refused = this.refuseProposal();
    if (refused !== undefined) return refused;
    return this.appendAndSend({ term: 0, index: 0, type: 'normal', data });
  }

  proposeConfChange(cc: ConfChange): { index: number; term: number } | ProposeError {
    const r = this.r;
    const refused = this.refuseProposal();
    if (refused !== undefined) return refused;
    if (r.pendingConfIndex > r.log.committed) return { code: 'conf-change-pending' };
    const bad = r.conf.check(cc);
    if (bad !== undefined) return { code: 'invalid', message: bad };
    // Set before appending: the append may commit at once and must see this change as pending.
    r.pendingConfIndex = r.log.lastIndex() + 1;
    return this.appendAndSend({ term: 0, index: 0, type: 'conf', data: new Uint8Array(0), conf: { ...cc } });
  }

  private refuseProposal(): ProposeError | undefined {
    const r = this.r;
    if (r.role !== 'leader') return { code: 'not-leader', leader: r.lead };
    if (r.leadTransferee !== '') return { code: 'transferring' };
    if (r.log.lastIndex() - r.log.committed >= r.cfg.uncommittedEntriesMax) return { code: 'overloaded' };
    return undefined;
  }

  private appendAndSend(e: Entry): { index: number; term: number } {
    const r = this.r;
    r.appendEntries([e]);
    const index = r.log.lastIndex();
    const term = r.term;
    if (r.role === 'leader') r.bcastPending = true;
    return { index, term };
  }

  transferLeader(to: string): ProposeError | undefined {
    const r = this.r;
    if (r.role !== 'leader') return { code: 'not-leader', leader: r.lead };
    if (to === r.id) {
      r.leadTransferee = '';
      return undefined;
    }
    if (!r.conf.voters.has(to)) return { code: 'invalid', message: `${to} is not a voter` };
    if (r.leadTransferee === to) return undefined;
    r.electionElapsed = 0;
    r.leadTransferee = to;
    const pr = r.prs.get(to);
    if (pr !== undefined && pr.match === r.log.lastIndex()) sendTimeoutNow(r, to);
    else sendAppend(r, to, true);
    return undefined;
  }

  readIndex(ctx: string): ProposeError | undefined {
    const r = this.r;
    if (r.role !== 'leader') return { code: 'not-leader', leader: r.lead };
    if (ctx === '') return { code: 'invalid', message: 'read ctx must not be empty' };
    if (r.readOnly.has(ctx) || r.pendingReads.includes(ctx)) return undefined;
    if (r.readOnly.size + r.pendingReads.length >= PENDING_READS_MAX) return { code: 'overloaded' };
    // Until the leader commits an entry of its term it may not know the latest commit index.
    if (r.log.term(r.log.committed) !== r.term) r.pendingReads.push(ctx);
    else startRead(r, ctx);
    return undefined;
  }

  campaign(): void {
    this.r.hup(false);
  }

  /**
   * Forget the leader without campaigning (etcd-io/raft's ForgetLeader): a replica, which never
   * campaigns, whose leader stopped publishing. The term stays; the same leader is learned again
   * from its next message. Only a follower or learner forgets.
   */
  forgetLeader(): void {
    const r = this.r;
    if (r.role === 'follower' || r.role === 'learner') r.lead = '';
  }

  hasReady(): boolean {
    const r = this.r;
    return (
      r.pendingSnapshot !== undefined ||
      r.log.hasNextUnstable() ||
      r.log.hasNextCommitted() ||
      (r.bcastPending && r.role === 'leader') ||
      r.msgs.length > 0 ||
      r.readStates.length > 0 ||
      !sameHard(this.prevHard, this.hardState()) ||
      this.prevSoft.leader !== r.lead ||
      this.prevSoft.role !== r.role
    );
  }

  ready(): Ready {
    const r = this.r;
    flushBroadcast(r);
    const rd: Ready = {
      entries: r.log.takeUnstable(),
      messages: r.msgs,
      committed: [],
      readStates: r.readStates,
    };
    if (r.pendingSnapshot !== undefined) {
      rd.snapshot = r.pendingSnapshot;
      r.pendingSnapshot = undefined;
    }
    // After takeUnstable: entries persisted by this same Ready may be applied after it.
    rd.committed = r.log.takeCommitted();
    r.msgs = [];
    r.readStates = [];
    const hs = this.hardState();
    if (!sameHard(hs, this.prevHard)) {
      if (hs.commit < this.prevHard.commit) {
        throw new Error(`raft: commit decreased from ${this.prevHard.commit} to ${hs.commit}`);
      }
      rd.hardState = hs;
      this.prevHard = hs;
    }
    if (this.prevSoft.leader !== r.lead || this.prevSoft.role !== r.role) {
      this.prevSoft = { leader: r.lead, role: r.role };
      rd.softState = { ...this.prevSoft };
    }
    return rd;
  }

  advance(rd: Ready): void {
    const log = this.r.log;
    if (rd.snapshot !== undefined) log.appliedSnapshot(rd.snapshot.meta.index);
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry !== undefined) {
      log.stableTo(lastEntry.index, lastEntry.term);
      this.selfDurable();
    }
    const lastCommitted = rd.committed[rd.committed.length - 1];
    if (lastCommitted !== undefined) log.appliedTo(lastCommitted.index);
  }

  /** Leader: its own persisted entries now count towards commitment (Raft thesis §10.2.1). */
  private selfDurable(): void {
    const r = this.r;
    if (r.role !== 'leader') return;
    const self = r.prs.get(r.id);
    if (self?.maybeUpdate(r.log.stabled) && maybeCommit(r)) r.bcastPending = true;
  }

  /**
   * The shell snapshotted the state machine at applied index `index`: drop entries ≤ index and
   * keep the snapshot to send to followers that need them. Returns the snapshot's meta for the
   * shell to persist with `data`, or undefined if the log was already compacted that far.
   */
  compact(index: number, data: Uint8Array): SnapshotMeta | undefined {
    const r = this.r;
    const log = r.log;
    if (index <= log.snapIndex) return undefined;
    if (index > log.applied)
      throw new Error(`raft: cannot compact to ${index}: applied is only ${log.applied}`);
    const term = log.term(index) as number;
    const conf = deriveConf(r.baseConf, log.all(), index).state();
    log.compact(index);
    r.baseConf = conf;
    const meta = { index, term, conf };
    r.snapshot = { meta, data };
    return { index, term, conf: copyConf(conf) };
  }

  status(): RaftStatus {
    const r = this.r;
    const progress: Record<string, PeerProgress> = {};
    if (r.role === 'leader') {
      for (const [id, pr] of r.prs) {
        progress[id] = id === r.id ? { ...pr.view(), recentActive: true } : pr.view();
      }
    }
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      role: r.role,
      leader: r.lead,
      commit: r.log.committed,
      applied: r.log.applied,
      lastIndex: r.log.lastIndex(),
      firstIndex: r.log.firstIndex(),
      conf: r.conf.state(),
      progress,
      transferee: r.leadTransferee,
    };
  }

  /** Throws if an internal invariant is broken (the simulator calls this after every step). */
  checkInvariants(): void {
    const r = this.r;
    const log = r.log;
    const ok =
      log.snapIndex <= log.applied &&
      log.applied <= log.applying &&
      log.applying <= log.committed &&
      log.committed <= log.lastIndex() &&
      log.stabled <= log.handedOut &&
      log.handedOut <= log.lastIndex();
    if (!ok) {
      throw new Error(
        `raft ${r.id}: index order broken: snap ${log.snapIndex} applied ${log.applied} applying ${log.applying} ` +
          `commit ${log.committed} stabled ${log.stabled} handedOut ${log.handedOut} last ${log.lastIndex()}`,
      );
    }
    if (log.lastTerm() > r.term)
      throw new Error(`raft ${r.id}: last entry term ${log.lastTerm()} > term ${r.term}`);
    if (r.role === 'leader' && r.lead !== r.id) throw new Error(`raft ${r.id}: leader with lead ${r.lead}`);
  }

  private hardState(): HardState {
    return { term: this.r.term, vote: this.r.vote, commit: this.r.log.committed };
  }
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function copyConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners] };
}
