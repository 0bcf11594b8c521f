// Replica fan-out, the pure part. Agents that are neither voters nor learners are replicas: the
// leader does not replicate to them one by one (its work per commit grows with the voter count,
// not the cluster size). It publishes each committed batch on the gossip topic; a replica feeds a
// batch into its own Raft core as an append from the leader, and fetches what it missed. Batches
// are also how a replica knows who leads: it takes no ticks and gets no Raft messages, so even a
// batch with nothing new names the leader (see onCommitBatch), and a leader that stops publishing
// is forgotten (LeaderSilence). The shell (src/raft/replica.ts) and the simulator (cluster-sim)
// both decide with these functions.
import type { Entry, Message, NodeId, Snapshot } from './types.js';

/** The leader publishes a heartbeat batch this often: one gossip message a second in a quiet
 * cluster. It bounds how long a replica takes to learn of a gap, or of the leader after a
 * restart, when nothing is written. */
export const HEARTBEAT_MS = 1_000;
/**
 * A replica forgets a leader it has heard nothing from (no batch, no heartbeat) for this long:
 * three heartbeats in a row lost or late. One lost gossip message must not make a replica drop a
 * live leader, but a replica whose leader died, or that is cut off from it, should say "no
 * leader" within seconds instead of forwarding writes into a dead peer. A new leader is learned
 * from its first heartbeat, sooner than this (its term is higher).
 */
export const LEADER_SILENT_MS = 3 * HEARTBEAT_MS;

/** Entries per published batch, and bytes (gossipsub messages are capped at 1 MiB). */
export const BATCH_ENTRIES_MAX = 512;
export const BATCH_BYTES_MAX = 512 * 1024;
/** Entries and bytes a fetch answer carries at most; beyond it the replica asks again. */
export const FETCH_ENTRIES_MAX = 1024;
export const FETCH_BYTES_MAX = 4 * 1024 * 1024;

export interface CommitBatch {
  /** Per-publisher sequence number. Gossip message ids are content hashes, so without it the
   * identical heartbeats of a quiet cluster would be dropped as duplicates for minutes. */
  seq: number;
  leader: NodeId;
  term: number;
  prevIndex: number;
  prevTerm: number;
  commit: number;
  entries: Entry[];
}

/** Split newly committed entries (the entry before them has term `prevTerm`) into batches that fit. */
export function planBatches(
  entries: readonly Entry[],
  prevTerm: number,
  leader: NodeId,
  term: number,
): Omit<CommitBatch, 'seq'>[] {
  const out: Omit<CommitBatch, 'seq'>[] = [];
  let start = 0;
  let prev = prevTerm;
  while (start < entries.length) {
    let end = start;
    let bytes = 0;
    while (end < entries.length && end - start < BATCH_ENTRIES_MAX) {
      bytes += (entries[end] as Entry).data.length + 64;
      if (end > start && bytes > BATCH_BYTES_MAX) break;
      end++;
    }
    const batch = entries.slice(start, end);
    const first = batch[0] as Entry;
    const last = batch[batch.length - 1] as Entry;
    out.push({
      leader,
      term,
      prevIndex: first.index - 1,
      prevTerm: prev,
      commit: last.index,
      entries: batch,
    });
    prev = last.term;
    start = end;
  }
  return out;
}

/** The leader's periodic heartbeat batch: no entries, its commit index (replicas learn of gaps). */
export function heartbeatBatch(leader: NodeId, term: number, commit: number): Omit<CommitBatch, 'seq'> {
  return { leader, term, prevIndex: commit, prevTerm: 0, commit, entries: [] };
}

export interface ReplicaView {
  id: NodeId;
  /** This node's commit index. */
  commit: number;
  /** Voter or learner in its own configuration (as opposed to a replica). */
  member: boolean;
}

export type BatchAction =
  | { do: 'ignore' }
  /** Step this append into the Raft core (validate it first if it came off the wire). */
  | { do: 'append'; msg: Message }
  /** Nothing to apply: step this heartbeat, which tells the core who leads (and at which term). */
  | { do: 'heartbeat'; msg: Message }
  /** A gap: fetch from `peer` starting after our last index. */
  | { do: 'fetch'; peer: NodeId };

/** What a node does with a published batch. */
export function onCommitBatch(b: CommitBatch, self: ReplicaView): BatchAction {
  // Nothing new to apply. (Members use batches beyond their commit too: a member normally has
  // every entry from the leader before the batch arrives, but a voter removed while it was cut off
  // still believes it is a member, the leader no longer replicates to it, and batches are its only
  // way to learn of its removal; cluster-sim found such a voter stuck in pre-vote for good.)
  if (b.commit <= self.commit) {
    // A member learns the leader from the leader's own messages; a heartbeat from gossip would
    // also answer the leader and count towards its check-quorum, though gossip is not the link
    // that check measures. A replica has no other way: ignoring this batch left a replica that
    // restarted up to date without a leader until the next write (`no raft leader` in a quiet
    // cluster). The commit it carries is at most ours, so stepping it changes no log.
    if (self.member) return { do: 'ignore' };
    return {
      do: 'heartbeat',
      msg: { t: 'heartbeat', term: b.term, from: b.leader, to: self.id, commit: b.commit, ctx: '' },
    };
  }
  // Our committed prefix matches the leader's log; anything after it may be a stale tail (an
  // ex-voter restarted after it was removed), which the append's conflict check truncates.
  if (b.entries.length > 0 && b.prevIndex <= self.commit) {
    return {
      do: 'append',
      msg: {
        t: 'append',
        term: b.term,
        from: b.leader,
        to: self.id,
        prevIndex: b.prevIndex,
        prevTerm: b.prevTerm,
        entries: b.entries,
        commit: b.commit,
      },
    };
  }
  if (b.commit > self.commit) return { do: 'fetch', peer: b.leader };
  return { do: 'ignore' };
}

/** The answer to a fetch: committed entries after `from`, or the snapshot when they are compacted. */
export type FetchReply =
  | { term: number; prevTerm: number; entries: Entry[]; commit: number }
  | { term: number; snapshot: Snapshot | undefined };

/**
 * Where a replica's fetch starts: right after its commit index, not its last index. Entries past
 * the commit may be a stale tail (a voter removed while cut off, an ex-leader), which an append
 * from the commit index truncates; asking from the last index would be refused forever
 * (cluster-sim seed 436741408).
 */
export function fetchStart(commit: number): number {
  return commit + 1;
}

/** A fetch answer as the message the replica steps (unvalidated: the shell validates wire data).
 * `prevIndex` is the index the fetch started after: fetchStart(commit) − 1. */
export function fetchReplyToMessage(res: FetchReply, peer: NodeId, self: NodeId, prevIndex: number): Message {
  // Off the wire an absent snapshot may arrive as null.
  const snapshot = 'snapshot' in res ? res.snapshot : undefined;
  if (snapshot !== undefined && snapshot !== null) {
    return { t: 'snapshot', term: res.term, from: peer, to: self, snapshot };
  }
  const r = res as Extract<FetchReply, { entries: Entry[] }>;
  return {
    t: 'append',
    term: r.term,
    from: peer,
    to: self,
    prevIndex,
    prevTerm: r.prevTerm,
    entries: r.entries,
    commit: r.commit,
  };
}

/** Whether another fetch round is needed after stepping `msg` (the answer was capped). */
export function fetchWantsMore(msg: Message): boolean {
  if (msg.t !== 'append') return false;
  const last = msg.entries[msg.entries.length - 1];
  return last !== undefined && last.index < msg.commit;
}

/**
 * How long a replica's leader has been silent. A voter forgets a silent leader by campaigning; a
 * replica never campaigns, so without this it would name a dead (or deposed, or unreachable)
 * leader for good. Pure: time is an argument. The caller checks `silent` at least every
 * HEARTBEAT_MS, so a silent leader is forgotten within LEADER_SILENT_MS + HEARTBEAT_MS.
 */
export class LeaderSilence {
  private leader: NodeId = '';
  private heardAtMs = 0;

  /** A batch from `leader` was stepped and the core names it as the leader now. */
  heard(leader: NodeId, nowMs: number): void {
    this.leader = leader;
    this.heardAtMs = nowMs;
  }

  /** True when `current` (the core's leader) has published nothing for LEADER_SILENT_MS. A leader
   * the core learned some other way (a fetch answer) is timed from when it is first seen here. */
  silent(current: NodeId, nowMs: number): boolean {
    if (current !== this.leader) this.heard(current, nowMs);
    return current !== '' && nowMs - this.heardAtMs >= LEADER_SILENT_MS;
  }
}

/** How long a replica waits for a missing batch before fetching: gossip does not keep order, and
 * on a large cluster a batch often arrives a hop ahead of the one before it. Fetching at once
 * made the leader serve several fetches per commit at 1,000 agents (cluster-sim). */
export const GAP_WAIT_MS = 100;
/** Batches held while waiting; beyond it the furthest ahead are dropped (a fetch repairs them). */
export const HELD_BATCHES_MAX = 64;

/**
 * Batches that arrived ahead of a gap, in order of their position, until the gap closes (the
 * missing batch arrives) or GAP_WAIT_MS passes and the replica fetches. Pure: time is an argument.
 */
export class HeldBatches {
  private held: CommitBatch[] = [];
  /** Since when we have known of commits we do not hold, and the highest such commit. */
  private gapSinceMs: number | undefined;
  private behindTo = 0;

  /** A batch that cannot apply yet (`entries` empty: a heartbeat saying we are behind). */
  hold(b: CommitBatch, nowMs: number): void {
    this.gapSinceMs ??= nowMs;
    this.behindTo = Math.max(this.behindTo, b.commit);
    if (b.entries.length === 0 || this.held.some((h) => h.prevIndex === b.prevIndex)) return;
    this.held.push(b);
    this.held.sort((x, y) => x.prevIndex - y.prevIndex);
    if (this.held.length > HELD_BATCHES_MAX) this.held.length = HELD_BATCHES_MAX;
  }

  /** The next held batch that continues a prefix committed up to `commit`; stale ones are dropped. */
  next(commit: number): CommitBatch | undefined {
    if (commit >= this.behindTo) this.gapSinceMs = undefined;
    this.held = this.held.filter((b) => b.commit > commit);
    const first = this.held[0];
    if (first === undefined || first.prevIndex > commit) return undefined;
    this.held.shift();
    return first;
  }

  /** True when a gap has been open for GAP_WAIT_MS: time to fetch. */
  shouldFetch(nowMs: number): boolean {
    return this.gapSinceMs !== undefined && nowMs - this.gapSinceMs >= GAP_WAIT_MS;
  }

  /** A fetch round ended: the next gap is timed afresh. */
  fetched(nowMs: number): void {
    if (this.gapSinceMs !== undefined) this.gapSinceMs = nowMs;
  }

  get size(): number {
    return this.held.length;
  }
}
