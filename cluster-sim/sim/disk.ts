// A simulated disk for one agent's Raft state, with the write semantics the agent gets from
// LevelDB: a synced write makes itself and every earlier write durable; an unsynced write (the
// agent writes commit-only hard state that way) survives only until a crash, unless a later synced
// write carries it. A crash throws away what is not durable.
import type { Entry, HardState, Snapshot } from '../../src/core/raft/types.js';

export interface DiskState {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  /** Persisted log entries after the snapshot, in index order. */
  entries: Entry[];
  /** Membership incarnation last used (the agent keeps it with its identity). */
  incarnation: number;
}

type Write = (d: DiskState) => void;

export class SimDisk {
  private durable: DiskState = {
    hardState: { term: 0, vote: '', commit: 0 },
    snapshot: undefined,
    entries: [],
    incarnation: 0,
  };
  private pending: Write[] = [];
  /** What the running agent sees: durable plus pending writes. */
  private view: DiskState = clone(this.durable);
  syncs = 0;

  get state(): Readonly<DiskState> {
    return this.view;
  }

  write(w: Write, sync: boolean): void {
    w(this.view);
    this.pending.push(w);
    if (sync) {
      for (const p of this.pending) p(this.durable);
      this.pending = [];
      this.syncs++;
    }
  }

  /** The process died: what was never synced is gone. Returns what a restart reads. */
  crash(): Readonly<DiskState> {
    this.pending = [];
    this.view = clone(this.durable);
    return this.view;
  }
}

function clone(d: DiskState): DiskState {
  return {
    hardState: { ...d.hardState },
    snapshot: d.snapshot,
    entries: [...d.entries],
    incarnation: d.incarnation,
  };
}

/** Append entries (truncating any conflicting suffix first), as the Ready contract says. */
export function appendEntries(d: DiskState, entries: readonly Entry[]): void {
  const first = entries[0];
  if (first === undefined) return;
  let keep = d.entries.length;
  while (keep > 0 && (d.entries[keep - 1] as Entry).index >= first.index) keep--;
  d.entries.length = keep;
  for (const e of entries) d.entries.push(e);
}

/** Install a snapshot received from the leader: it replaces the whole log, as in the agent. */
export function installSnapshot(d: DiskState, s: Snapshot): void {
  d.snapshot = s;
  d.entries = [];
}

/** Compaction: the snapshot replaces every entry up to its index. */
export function compactTo(d: DiskState, s: Snapshot): void {
  d.snapshot = s;
  d.entries = d.entries.filter((e) => e.index > s.meta.index);
}
