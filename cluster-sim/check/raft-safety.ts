// Raft safety, checked as the simulation runs (the Raft paper's §5.4 properties, plus two of our
// own). Global across nodes, replicas and restarts; the first violation throws a SafetyViolation.
//   election safety        at most one leader per term
//   log matching           an (index, term) pair names one entry, with one previous term, everywhere
//   leader completeness    a new leader holds every entry committed in an earlier term
//   state machine safety   no two nodes apply different entries at one index
//   commit monotonic       a node's persisted commit index never decreases while it runs, nor
//                          below what it had synced when it restarts
import type { Entry, NodeId, RaftStatus, Snapshot } from '../../src/core/raft/types.js';

export class SafetyViolation extends Error {
  constructor(
    readonly property: string,
    message: string,
  ) {
    super(`${property}: ${message}`);
  }
}

const text = new TextDecoder();

/** A printable identity of an entry: equal keys mean the same entry. */
export function entryKey(e: Entry): string {
  const conf = e.conf === undefined ? '' : ` ${e.conf.op}:${e.conf.node}`;
  return `${e.term}/${e.type}/${text.decode(e.data)}${conf}`;
}

/** What the checker needs to see of a node's persisted log. */
export interface PersistedLog {
  /** Term of index i in the persisted log; -1 when unknown (compacted away). */
  termAt(i: number): number;
  /** The persisted entry at index i, if still in the log. */
  entryAt(i: number): Entry | undefined;
  /** Index of the persisted snapshot (0 for none). */
  snapshotIndex(): number;
}

export class RaftSafety {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** (index@term) → the entry's key and its previous term. Grows with the log; fine for a run. */
  private readonly entryAt = new Map<string, { key: string; prevTerm: number }>();
  /** Key of the entry applied at each index by whoever applied it first. */
  private readonly appliedAt: string[] = [];
  /** Term in which each index was first seen committed by a leader. */
  private readonly commitTermAt: number[] = [];
  private commitKnown = 0;
  private readonly lastCommit = new Map<NodeId, number>();
  private readonly snapshotAt = new Map<number, { digest: number; node: NodeId }>();
  readonly counts = { entriesChecked: 0, appliesChecked: 0 };

  /** Entries a node persisted (call after they are in `log`). */
  onPersistEntries(node: NodeId, entries: readonly Entry[], log: PersistedLog): void {
    for (const e of entries) {
      this.counts.entriesChecked++;
      const k = `${e.index}@${e.term}`;
      const prevTerm = log.termAt(e.index - 1);
      const key = entryKey(e);
      const seen = this.entryAt.get(k);
      if (seen === undefined) this.entryAt.set(k, { key, prevTerm });
      else if (seen.key !== key || (prevTerm >= 0 && seen.prevTerm >= 0 && seen.prevTerm !== prevTerm)) {
        throw new SafetyViolation('log matching', `${k} on ${node} holds ${key}, elsewhere ${seen.key}`);
      }
    }
  }

  /** A node persisted hard state with this commit index. */
  onPersistCommit(node: NodeId, commit: number): void {
    const prev = this.lastCommit.get(node) ?? 0;
    if (commit < prev)
      throw new SafetyViolation('commit monotonic', `${node} commit went ${prev} → ${commit}`);
    this.lastCommit.set(node, commit);
  }

  /** A node crashed: its commit index restarts from what was durable (commit-only hard state is
   * written without a sync, and the commit index is volatile state in Raft). */
  onCrash(node: NodeId, durableCommit: number): void {
    this.lastCommit.set(node, durableCommit);
  }

  /** A node applied the entry with `key` at `index` (snapshot contents count as applied). */
  onApply(node: NodeId, index: number, key: string): void {
    this.counts.appliesChecked++;
    const had = this.appliedAt[index];
    if (had === undefined) this.appliedAt[index] = key;
    else if (had !== key) {
      throw new SafetyViolation(
        'state machine safety',
        `${node} applied ${key} at ${index}, another node ${had}`,
      );
    }
  }

  /** A node took or installed a snapshot at `index`: the state machine is deterministic, so every
   * snapshot at one index must be byte-for-byte the same. Only digests are kept. */
  onSnapshot(node: NodeId, index: number, data: Uint8Array): void {
    const digest = fnv1a(data);
    const had = this.snapshotAt.get(index);
    if (had === undefined) this.snapshotAt.set(index, { digest, node });
    else if (had.digest !== digest) {
      throw new SafetyViolation(
        'state machine safety',
        `${node}'s snapshot at ${index} differs from ${had.node}'s`,
      );
    }
  }

  /** Key applied at `index` by the first node that did, if any. */
  appliedKey(index: number): string | undefined {
    return this.appliedAt[index];
  }

  /** After every step of a node: one leader per term; remember what leaders commit. */
  onStatus(s: RaftStatus): void {
    if (s.role !== 'leader') return;
    const other = this.leaderOfTerm.get(s.term);
    if (other !== undefined && other !== s.id) {
      throw new SafetyViolation('election safety', `two leaders in term ${s.term}: ${other} and ${s.id}`);
    }
    this.leaderOfTerm.set(s.term, s.id);
    for (let i = this.commitKnown + 1; i <= s.commit; i++) this.commitTermAt[i] = s.term;
    this.commitKnown = Math.max(this.commitKnown, s.commit);
  }

  /** A node just became leader of `term`: it must hold every entry committed in earlier terms. */
  onBecomeLeader(node: NodeId, term: number, log: PersistedLog): void {
    for (let i = log.snapshotIndex() + 1; i <= this.commitKnown; i++) {
      if ((this.commitTermAt[i] as number) >= term) continue;
      const e = log.entryAt(i);
      const want = this.appliedAt[i];
      if (e === undefined || (want !== undefined && entryKey(e) !== want)) {
        throw new SafetyViolation(
          'leader completeness',
          `leader ${node} of term ${term} lacks committed entry ${i}`,
        );
      }
    }
  }

  get terms(): number {
    return this.leaderOfTerm.size;
  }

  get highestCommit(): number {
    return this.commitKnown;
  }
}

/** The checker's view of a persisted log held as entries after an optional snapshot. */
export function persistedLog(
  state: () => { readonly entries: readonly Entry[]; readonly snapshot: Snapshot | undefined },
): PersistedLog {
  const find = (i: number): Entry | undefined => {
    const es = state().entries;
    const first = es[0];
    if (first === undefined) return undefined;
    const e = es[i - first.index];
    return e !== undefined && e.index === i ? e : es.find((x) => x.index === i);
  };
  return {
    termAt(i: number): number {
      if (i === 0) return 0;
      const s = state().snapshot?.meta;
      if (s !== undefined && i === s.index) return s.term;
      return find(i)?.term ?? -1;
    },
    entryAt: find,
    snapshotIndex: () => state().snapshot?.meta.index ?? 0,
  };
}

function fnv1a(data: Uint8Array): number {
  let h = 2166136261;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ (data[i] as number), 16777619);
  return h >>> 0;
}
