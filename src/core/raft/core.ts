// The Raft state shared by the role step functions (roles.ts) and replication (replication.ts).
// Internal to src/core/raft: the public facade is RaftNode in raft.ts.
//
// Elections follow etcd-io/raft: pre-vote asks "would you vote for me at term+1?" without
// changing anyone's term; check-quorum makes a leader that lost touch with a quorum step down and
// lets followers ignore (pre-)votes while they hear from a leader (leader lease).
import { type Conf, deriveConf } from './conf.js';
import type { RaftLog } from './log.js';
import { Progress } from './progress.js';
import { hasQuorum, voteResult } from './quorum.js';
import { ReadOnly } from './read-only.js';
import { bcastAppend, bcastHeartbeat, maybeCommit } from './replication.js';
import type {
  ConfState,
  Entry,
  Message,
  NodeId,
  RaftConfig,
  ReadState,
  Rng,
  Role,
  Snapshot,
} from './types.js';

export type CampaignKind = 'pre-election' | 'election';

export function checkRaftConfig(c: RaftConfig): void {
  const posInt = (n: number) => Number.isSafeInteger(n) && n >= 1;
  if (!posInt(c.electionTicks)) throw new Error(`raft: electionTicks must be ≥ 1, got ${c.electionTicks}`);
  if (!posInt(c.heartbeatTicks) || c.heartbeatTicks >= c.electionTicks) {
    throw new Error(`raft: heartbeatTicks must be in [1, electionTicks), got ${c.heartbeatTicks}`);
  }
  for (const k of ['inflightMax', 'appendEntriesMax', 'appendBytesMax', 'uncommittedEntriesMax'] as const) {
    if (!posInt(c[k])) throw new Error(`raft: ${k} must be ≥ 1, got ${c[k]}`);
  }
}

export class Raft {
  readonly id: NodeId;
  readonly cfg: RaftConfig;
  private readonly rng: Rng;

  term = 0;
  vote: NodeId = '';
  lead: NodeId = '';
  /** The leader this node has seen in `term` ('' if none): two different ones is a safety bug. */
  private termLeader: NodeId = '';
  role: Role = 'follower';

  readonly log: RaftLog;
  /** Configuration as of the snapshot; `conf` adds the conf entries in the log. */
  baseConf: ConfState;
  conf: Conf;
  /** Latest snapshot with data, sent to followers that need entries we compacted away. */
  snapshot: Snapshot | undefined;
  /** A snapshot received from the leader, not yet handed out in a Ready. */
  pendingSnapshot: Snapshot | undefined;

  /** Leader only: progress of every member (including this node while it is a member). */
  readonly prs = new Map<NodeId, Progress>();
  readonly votes = new Map<NodeId, boolean>();
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  leadTransferee: NodeId = '';
  /** Leader only: index of the newest conf entry that may be uncommitted. */
  pendingConfIndex = 0;
  readonly readOnly = new ReadOnly();
  /** Leader only: reads that wait for the first commit of the leader's term. */
  pendingReads: string[] = [];

  msgs: Message[] = [];
  readStates: ReadState[] = [];
  /**
   * Leader only: new entries or a new commit index wait to be sent to the followers. They go out
   * once per Ready (flushBroadcast), not once per proposal or acknowledgement: under load one
   * append per follower then carries every proposal that arrived meanwhile, and the follower
   * answers it once, instead of one message (and one answer) per write.
   */
  bcastPending = false;

  constructor(
    id: NodeId,
    cfg: RaftConfig,
    rng: Rng,
    log: RaftLog,
    baseConf: ConfState,
    snapshot: Snapshot | undefined,
  ) {
    this.id = id;
    this.cfg = cfg;
    this.rng = rng;
    this.log = log;
    this.baseConf = baseConf;
    this.conf = deriveConf(baseConf, log.all());
    this.snapshot = snapshot;
  }

  // ---- roles ---------------------------------------------------------------------------------

  /**
   * May this node campaign? A voter of its latest configuration may. So may a node whose removal
   * is not yet committed (Raft thesis §4.2.2): it can hold the only copy of the removal entry
   * (a removed leader that lost leadership before the commit), and without it the others could
   * not elect anyone. It never counts its own vote. Once the removal commits it stays silent.
   */
  promotable(): boolean {
    if (this.conf.voters.has(this.id)) return true;
    if (this.conf.learners.has(this.id)) return false;
    return deriveConf(this.baseConf, this.log.all(), this.log.committed).voters.has(this.id);
  }

  private followerRole(): Role {
    return this.conf.learners.has(this.id) ? 'learner' : 'follower';
  }

  private reset(term: number): void {
    if (term < this.term) throw new Error(`raft: term must not decrease (${this.term} → ${term})`);
    if (term !== this.term) {
      this.term = term;
      this.vote = '';
      this.termLeader = '';
    }
    this.lead = '';
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout =
      this.cfg.electionTicks + Math.floor(this.rng.next() * this.cfg.electionTicks);
    this.leadTransferee = '';
    this.votes.clear();
    this.prs.clear();
    this.pendingConfIndex = 0;
    this.readOnly.reset();
    this.pendingReads = [];
  }

  /** Record `lead` as the leader of the current term, asserting election safety locally. */
  setLead(lead: NodeId): void {
    if (lead === '') return;
    if (this.termLeader !== '' && this.termLeader !== lead) {
      throw new Error(
        `raft: two leaders in term ${this.term}: ${this.termLeader} and ${lead} (seen by ${this.id})`,
      );
    }
    this.termLeader = lead;
    this.lead = lead;
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.role = this.followerRole();
    this.setLead(lead);
  }

  private becomePreCandidate(): void {
    if (this.role === 'leader') throw new Error('raft: leader cannot become pre-candidate');
    // Does not change term or vote: a pre-election is only a poll.
    this.votes.clear();
    this.lead = '';
    this.role = 'pre-candidate';
  }

  private becomeCandidate(): void {
    if (this.role === 'leader') throw new Error('raft: leader cannot become candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  becomeLeader(): void {
    if (this.role !== 'candidate')
      throw new Error(`raft: only a candidate can become leader (was ${this.role})`);
    this.reset(this.term);
    this.role = 'leader';
    this.setLead(this.id);
    const last = this.log.lastIndex();
    for (const id of [...this.conf.voters, ...this.conf.learners]) {
      const pr = new Progress(last + 1, this.cfg.inflightMax, this.conf.learners.has(id));
      if (id === this.id) {
        // Only what is durable counts towards a quorum (advance() moves it on): a leader that
        // counted entries still in memory could commit one that only a single disk holds.
        pr.match = this.log.stabled;
        pr.becomeReplicate();
      }
      // Give everyone a full election timeout before check-quorum counts them as silent.
      pr.recentActive = true;
      this.prs.set(id, pr);
    }
    // Any conf entry in our log may be uncommitted: no new change until our first commit.
    this.pendingConfIndex = last;
    this.appendEntries([{ term: 0, index: 0, type: 'noop', data: new Uint8Array(0) }]);
    if (this.role === 'leader') bcastAppend(this);
  }

  // ---- time ----------------------------------------------------------------------------------

  tick(): void {
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout && this.promotable()) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    for (const pr of this.prs.values()) {
      // A lost snapshot message would leave the peer in snapshot state forever: retry by probing.
      if (pr.state === 'snapshot' && ++pr.snapshotElapsedTicks >= this.cfg.electionTicks) pr.becomeProbe();
    }
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, '');
          return;
        }
        for (const [id, pr] of this.prs) pr.recentActive = id === this.id;
      }
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.leadTransferee !== '') this.leadTransferee = '';
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      bcastHeartbeat(this);
    }
  }

  quorumActive(): boolean {
    return hasQuorum(this.conf.voters, (id) => id === this.id || this.prs.get(id)?.recentActive === true);
  }

  // ---- elections -----------------------------------------------------------------------------

  hup(transfer: boolean): void {
    if (this.role === 'leader' || !this.promotable()) return;
    if (this.cfg.preVote && !transfer) this.campaign('pre-election', false);
    else this.campaign('election', transfer);
  }

  campaign(kind: CampaignKind, transfer: boolean): void {
    let voteTerm: number;
    if (kind === 'pre-election') {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      // Single voter: we won at once.
      if (kind === 'pre-election') this.campaign('election', transfer);
      else this.becomeLeader();
      return;
    }
    const t = kind === 'pre-election' ? 'pre-vote' : 'vote';
    for (const to of [...this.conf.voters].sort()) {
      if (to === this.id) continue;
      this.send({
        t,
        term: voteTerm,
        from: this.id,
        to,
        lastIndex: this.log.lastIndex(),
        lastTerm: this.log.lastTerm(),
        transfer,
      });
    }
  }

  poll(from: NodeId, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    return voteResult(this.conf.voters, this.votes);
  }

  /** A candidate won its election (called by stepCandidate). */
  wonElection(): void {
    if (this.role === 'pre-candidate') this.campaign('election', false);
    else this.becomeLeader();
  }

  // ---- log -----------------------------------------------------------------------------------

  /** Leader: append new entries at the end of our log (term and index assigned here). */
  appendEntries(ents: Entry[]): void {
    if (this.role !== 'leader') throw new Error('raft: only the leader appends new entries');
    let index = this.log.lastIndex();
    const stamped = ents.map((e) => ({ ...e, term: this.term, index: ++index }));
    this.log.append(stamped);
    if (stamped.some((e) => e.type === 'conf')) this.refreshConf();
    // The leader's own copy counts once the shell has persisted it (advance); a removal of other
    // voters may still let what followers already acknowledged commit now.
    if (maybeCommit(this)) this.bcastPending = true;
  }

  /** Re-derive the configuration from the snapshot's plus the conf entries in the log. */
  refreshConf(): void {
    this.conf = deriveConf(this.baseConf, this.log.all());
    const isMember = (id: NodeId) => this.conf.has(id);
    if (this.role === 'leader') {
      const last = this.log.lastIndex();
      for (const id of [...this.conf.voters, ...this.conf.learners]) {
        const learner = this.conf.learners.has(id);
        const pr = this.prs.get(id);
        if (pr === undefined) {
          const fresh = new Progress(last + 1, this.cfg.inflightMax, learner);
          fresh.recentActive = true;
          this.prs.set(id, fresh);
        } else {
          pr.isLearner = learner;
        }
      }
      for (const id of [...this.prs.keys()]) if (id !== this.id && !isMember(id)) this.prs.delete(id);
      if (this.leadTransferee !== '' && !this.conf.voters.has(this.leadTransferee)) this.leadTransferee = '';
    } else if (this.role === 'follower' || this.role === 'learner') {
      this.role = this.followerRole();
    } else if (!this.promotable()) {
      this.becomeFollower(this.term, '');
    }
  }

  // ---- messages ------------------------------------------------------------------------------

  send(m: Message): void {
    if (m.to === this.id) throw new Error(`raft: ${this.id} sending ${m.t} to itself`);
    this.msgs.push(m);
  }
}
