// Types of the Raft core. The core has the shape of etcd-io/raft: messages and ticks go in; a
// Ready comes out with state to persist, entries to persist, messages to send (only after the
// persist), committed entries to apply, and read states. No I/O, no clock, randomness only from
// the injected seeded Rng (election timeouts).
import type { Rng } from '../membership/types.js';

export type { Rng };

/** A node's id: its libp2p peer id (same as the membership id). */
export type NodeId = string;

export type EntryType =
  /** An application command (opaque bytes the state machine decodes). */
  | 'normal'
  /** A membership change; `data` is a msgpack-free, core-readable ConfChange in `conf`. */
  | 'conf'
  /** The empty entry a new leader appends to commit entries of earlier terms. */
  | 'noop';

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Command bytes for 'normal' entries; empty for others. */
  data: Uint8Array;
  /** The change, for 'conf' entries. */
  conf?: ConfChange;
}

/** Single-server membership changes (Raft thesis §4.1), applied when the entry is appended. */
export type ConfChange =
  | { op: 'add-learner'; node: NodeId }
  | { op: 'promote'; node: NodeId }
  | { op: 'remove'; node: NodeId };

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface HardState {
  term: number;
  /** Who this node voted for in `term`, '' for nobody. */
  vote: NodeId;
  commit: number;
}

export interface SnapshotMeta {
  /** Last index and term the snapshot includes. */
  index: number;
  term: number;
  /** Configuration as of `index`. */
  conf: ConfState;
}

export interface Snapshot {
  meta: SnapshotMeta;
  /** State machine contents at meta.index, opaque to the core. */
  data: Uint8Array;
}

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader' | 'learner';

interface Base {
  term: number;
  from: NodeId;
  to: NodeId;
}

export type Message =
  | (Base & {
      t: 'pre-vote' | 'vote';
      lastIndex: number;
      lastTerm: number /** leader transfer: bypass lease */;
      transfer: boolean;
    })
  | (Base & { t: 'pre-vote-resp' | 'vote-resp'; reject: boolean })
  | (Base & { t: 'append'; prevIndex: number; prevTerm: number; entries: Entry[]; commit: number })
  /** On success `index` is the follower's last index matching the leader's log. On reject `index`
   * is the rejected append's prevIndex and `hint` the largest index ≤ min(prevIndex, the
   * follower's last index) whose term is ≤ the append's prevTerm: the logs cannot match above it
   * (etcd's findConflictByTerm), so the leader probes from hint + 1. */
  | (Base & { t: 'append-resp'; index: number; reject: boolean; hint: number })
  /** `ctx` non-empty when the heartbeat carries a ReadIndex round. */
  | (Base & { t: 'heartbeat'; commit: number; ctx: string })
  | (Base & { t: 'heartbeat-resp'; ctx: string })
  | (Base & { t: 'snapshot'; snapshot: Snapshot })
  /** Leader transfer: the target starts an election at once. */
  | (Base & { t: 'timeout-now' });

/** A completed ReadIndex request: reads are linearizable once `index` has been applied. */
export interface ReadState {
  ctx: string;
  index: number;
}

export interface SoftState {
  leader: NodeId;
  role: Role;
}

/** Everything to do since the last advance(), in this order: persist, send, apply. */
export interface Ready {
  /** Persist (synced) before sending messages, if present. */
  hardState?: HardState;
  /** Append to the persisted log (synced); entries[0].index may overwrite a conflicting suffix:
   * delete every persisted entry ≥ entries[0].index first. */
  entries: Entry[];
  /** A snapshot received from the leader: persist it and replace the state machine with it. */
  snapshot?: Snapshot;
  /** Send after the above is durable. */
  messages: Message[];
  /** Apply to the state machine in order (never beyond what is persisted on this node). */
  committed: Entry[];
  readStates: ReadState[];
  /** Present when leader or role changed. */
  softState?: SoftState;
}

export interface RaftConfig {
  /** Ticks without hearing from a leader before a follower campaigns; randomised in [n, 2n). */
  electionTicks: number;
  /** Leader heartbeat period in ticks. Must be < electionTicks. */
  heartbeatTicks: number;
  /** Pre-vote (Raft thesis §9.6): a node campaigns only if a quorum would vote for it, so a
   * partitioned node rejoining cannot disrupt a healthy leader by inflating terms. */
  preVote: boolean;
  /** Check-quorum: a leader that has not heard from a quorum for an election timeout steps down;
   * followers that heard from a leader within the timeout ignore (pre-)votes (leader lease). */
  checkQuorum: boolean;
  /** Max in-flight append messages per follower (pipelining). */
  inflightMax: number;
  /** Max bytes of entries per append message (batching). */
  appendBytesMax: number;
  /** Max entries per append message. */
  appendEntriesMax: number;
  /** Max uncommitted entries the leader accepts before refusing proposals (backpressure). */
  uncommittedEntriesMax: number;
}

export interface PeerProgress {
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  /** Ticks since the leader last heard from this peer. */
  recentActive: boolean;
}

export interface RaftStatus {
  id: NodeId;
  term: number;
  vote: NodeId;
  role: Role;
  leader: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  conf: ConfState;
  /** Leader only: replication progress per voter and learner. */
  progress: Record<NodeId, PeerProgress>;
  /** Leader transfer in progress to this node, '' otherwise. */
  transferee: NodeId;
}

/** Why a proposal was refused. The shell forwards to `leader` when known. */
export type ProposeError =
  | { code: 'not-leader'; leader: NodeId }
  | { code: 'transferring' }
  | { code: 'overloaded' }
  | { code: 'conf-change-pending' }
  | { code: 'invalid'; message: string };
