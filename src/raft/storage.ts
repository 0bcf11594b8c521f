// Raft's durable state in the agent's LevelDB: hard state, log entries and the latest snapshot
// (key spaces in src/store/store.ts and docs/architecture.md). Everything in a Ready is written in
// one synced batch before any of its messages are sent, as Raft requires.
import type { RaftRestore } from '../core/raft/raft.js';
import type { ConfState, Entry, HardState, Ready, Snapshot } from '../core/raft/types.js';
import { type BatchOp, KEYS, type Store } from '../store/store.js';
import { DecodeError, decode, encode } from '../wire/codec.js';

export function logKey(index: number): string {
  return KEYS.raftLogPrefix + index.toString(16).padStart(16, '0');
}

const LOG_END = `${KEYS.raftLogPrefix}~`;

export interface LoadedRaftState {
  restore: Omit<RaftRestore, 'initialConf' | 'applied'>;
  snapshot: Snapshot | undefined;
  bootstrapped: boolean;
}

export class RaftStorage {
  /** Index of the last persisted entry (0 when the log is empty). */
  private lastIndex = 0;
  /** The hard state last written, to tell a commit-only change from a term or vote change. */
  private lastHard: HardState | undefined;
  /** `lastHard` differs from the disk only in its commit index (see `persist`). */
  private hardUnwritten = false;

  constructor(private readonly store: Store) {}

  /** Index of the last entry written (by `persist` calls that have completed or are running). */
  get lastPersistedIndex(): number {
    return this.lastIndex;
  }

  async load(): Promise<LoadedRaftState> {
    const hsRaw = await this.store.get(KEYS.raftHardState);
    const hardState: HardState = hsRaw
      ? (decodeOrThrow(hsRaw, 'hard state') as HardState)
      : { term: 0, vote: '', commit: 0 };
    if (hsRaw) this.lastHard = hardState;
    const snapRaw = await this.store.get(KEYS.raftSnapshot);
    const snapshot = snapRaw ? (decodeOrThrow(snapRaw, 'snapshot') as Snapshot) : undefined;
    const from = snapshot ? snapshot.meta.index + 1 : 1;
    const rows = await this.store.range(logKey(from), LOG_END);
    const entries: Entry[] = [];
    for (const [key, value] of rows) {
      const e = decodeOrThrow(value, key) as Entry;
      e.data = e.data ?? new Uint8Array(0);
      const expected = (entries.length ? (entries[entries.length - 1] as Entry).index : from - 1) + 1;
      if (e.index !== expected) {
        throw new Error(`raft log is not contiguous: expected index ${expected} at ${key}, found ${e.index}`);
      }
      entries.push(e);
    }
    this.lastIndex = entries.length
      ? (entries[entries.length - 1] as Entry).index
      : (snapshot?.meta.index ?? 0);
    const bootstrapped = (await this.store.get(KEYS.raftBootstrapped)) !== undefined;
    return { restore: { hardState, snapshot: snapshot?.meta, entries }, snapshot, bootstrapped };
  }

  /**
   * Persist everything durable in a Ready in one synced batch. A Ready whose only change is the
   * commit index writes nothing: Raft does not need commit durable (a restarted node learns it
   * again from the leader), so that hard state rides along with the next batch that has to be
   * written anyway (or `flush` at stop). Every write's commit step thus waits on no disk at all.
   *
   * `sync` false is for replicas (neither voter nor learner): they acknowledge nothing, so their
   * copy need not survive a power loss (a process crash keeps it: the OS has it); a restarted
   * replica fetches what it lacks. Ten agents syncing one disk for every commit made replicas
   * wait 2–17 ms each in bench:raft. A replica promoted to learner syncs its next batch, which
   * makes everything written before it durable too (LevelDB syncs its whole log file).
   */
  async persist(rd: Ready, sync = true): Promise<void> {
    const ops: BatchOp[] = [];
    const commitOnly =
      rd.entries.length === 0 &&
      rd.snapshot === undefined &&
      rd.hardState !== undefined &&
      this.lastHard !== undefined &&
      rd.hardState.term === this.lastHard.term &&
      rd.hardState.vote === this.lastHard.vote;
    if (rd.snapshot) {
      ops.push({ type: 'put', key: KEYS.raftSnapshot, value: encode(rd.snapshot) });
      // The snapshot replaces the whole log up to and including its index.
      for (const key of await this.store.keys(KEYS.raftLogPrefix, logKey(rd.snapshot.meta.index + 1))) {
        ops.push({ type: 'del', key });
      }
      this.lastIndex = Math.max(this.lastIndex, rd.snapshot.meta.index);
    }
    if (rd.entries.length > 0) {
      const first = (rd.entries[0] as Entry).index;
      // A leader's entries replace a conflicting suffix of ours.
      for (let i = first; i <= this.lastIndex; i++) ops.push({ type: 'del', key: logKey(i) });
      for (const e of rd.entries) ops.push({ type: 'put', key: logKey(e.index), value: encode(e) });
      this.lastIndex = (rd.entries[rd.entries.length - 1] as Entry).index;
    }
    if (commitOnly) {
      this.lastHard = rd.hardState;
      this.hardUnwritten = true;
      return;
    }
    if (rd.hardState) this.lastHard = rd.hardState;
    if (this.lastHard && (rd.hardState || this.hardUnwritten)) {
      ops.push({ type: 'put', key: KEYS.raftHardState, value: encode(this.lastHard) });
      this.hardUnwritten = false;
    }
    await this.store.batch(ops, sync);
  }

  /** Write a commit index that only lives in memory so far (graceful stop). */
  async flush(): Promise<void> {
    if (!this.hardUnwritten || !this.lastHard) return;
    this.hardUnwritten = false;
    await this.store.batch([{ type: 'put', key: KEYS.raftHardState, value: encode(this.lastHard) }]);
  }

  /** Save a snapshot the state machine produced and drop the log entries it covers. */
  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    const ops: BatchOp[] = [{ type: 'put', key: KEYS.raftSnapshot, value: encode(snapshot) }];
    for (const key of await this.store.keys(KEYS.raftLogPrefix, logKey(snapshot.meta.index + 1))) {
      ops.push({ type: 'del', key });
    }
    await this.store.batch(ops);
  }

  /**
   * Committed entries from `from` (inclusive), at most `entriesMax` / ~`bytesMax`, never past
   * `commit`; with the term of the entry before `from`. Undefined when `from` was compacted into
   * the snapshot (the caller sends the snapshot instead).
   */
  async readCommitted(
    from: number,
    commit: number,
    entriesMax: number,
    bytesMax: number,
  ): Promise<{ entries: Entry[]; prevTerm: number } | undefined> {
    const snapRaw = await this.store.get(KEYS.raftSnapshot);
    const snap = snapRaw ? (decodeOrThrow(snapRaw, 'snapshot') as Snapshot) : undefined;
    if (snap && from <= snap.meta.index) return undefined;
    let prevTerm = 0;
    if (from > 1) {
      if (snap && snap.meta.index === from - 1) prevTerm = snap.meta.term;
      else {
        const prev = await this.store.get(logKey(from - 1));
        if (!prev) return undefined;
        prevTerm = (decodeOrThrow(prev, 'entry') as Entry).term;
      }
    }
    if (from > commit) return { entries: [], prevTerm };
    const rows = await this.store.range(logKey(from), logKey(commit + 1), entriesMax);
    const entries: Entry[] = [];
    let bytes = 0;
    for (const [key, value] of rows) {
      bytes += value.length;
      if (entries.length > 0 && bytes > bytesMax) break;
      const e = decodeOrThrow(value, key) as Entry;
      e.data = e.data ?? new Uint8Array(0);
      entries.push(e);
    }
    return { entries, prevTerm };
  }

  async readSnapshot(): Promise<Snapshot | undefined> {
    const raw = await this.store.get(KEYS.raftSnapshot);
    return raw ? (decodeOrThrow(raw, 'snapshot') as Snapshot) : undefined;
  }

  async markBootstrapped(conf: ConfState): Promise<void> {
    await this.store.batch([{ type: 'put', key: KEYS.raftBootstrapped, value: encode(conf) }]);
  }
}

function decodeOrThrow(bytes: Uint8Array, what: string): unknown {
  const v = decode(bytes);
  if (v instanceof DecodeError) throw new Error(`corrupt raft ${what} in the data dir: ${v.message}`);
  return v;
}
