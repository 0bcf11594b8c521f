// The agent's LevelDB. One database per data dir; key spaces are prefixes, documented in
// docs/architecture.md ("Storage"). Values are raw bytes; callers choose their encoding.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { MeshError } from '../api/types.js';

/** Key spaces. Later subsystems (raft log, hard state, snapshots, applied state) add theirs here. */
export const KEYS = {
  /** libp2p private key (protobuf), the node's stable identity. */
  nodePrivateKey: 'node/private-key',
  /** Last membership incarnation used, decimal string; a restart starts above it. */
  nodeIncarnation: 'node/incarnation',
  /** Node name the identity was created with (informational; a rename is allowed and logged). */
  nodeName: 'node/name',
  /** Raft hard state {term, vote, commit}, msgpack. */
  raftHardState: 'raft/hard-state',
  /** Raft log entries, `raft/log/<index as 16 hex digits>` (sorts by index), msgpack Entry. */
  raftLogPrefix: 'raft/log/',
  /** Latest Raft snapshot {meta, data}: the applied state machine at meta.index, msgpack. */
  raftSnapshot: 'raft/snapshot',
  /** Raft role bootstrap marker: this node bootstrapped a cluster (never bootstrap twice). */
  raftBootstrapped: 'raft/bootstrapped',
  /** Catalog generation, decimal string, bumped at every start: this run's record versions are
   * above every earlier run's, so other agents replace what they held of us. */
  catalogGeneration: 'catalog/generation',
  /** Services registered through the API, `services/<id>` → the definition as registered (JSON). */
  servicesPrefix: 'services/',
} as const;

/** One operation of an atomic batch. */
export type BatchOp = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

export class Store {
  private constructor(
    private readonly db: Level<string, Uint8Array>,
    readonly path: string,
  ) {}

  static async open(dataDir: string): Promise<Store> {
    await mkdir(dataDir, { recursive: true });
    const path = join(dataDir, 'state.ldb');
    const db = new Level<string, Uint8Array>(path, { valueEncoding: 'view' });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
      if (/lock/i.test(cause)) {
        throw new MeshError('unavailable', `data dir ${dataDir} is in use by another agent (${cause})`);
      }
      throw new MeshError('internal', `cannot open the database in ${path}: ${cause}`);
    }
    return new Store(db, path);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return this.db.get(key);
  }

  async getString(key: string): Promise<string | undefined> {
    const v = await this.db.get(key);
    return v === undefined ? undefined : new TextDecoder().decode(v);
  }

  /** Durable write: synced to disk before the promise resolves. */
  async put(key: string, value: Uint8Array | string): Promise<void> {
    const bytes = typeof value === 'string' ? new TextEncoder().encode(value) : value;
    await this.db.put(key, bytes, { sync: true });
  }

  /**
   * Atomic batch: all operations land together or not at all. With `sync` (the default) it is
   * on disk before the promise resolves; without, a crash may lose it (never half of it).
   */
  async batch(ops: BatchOp[], sync = true): Promise<void> {
    if (ops.length === 0) return;
    await this.db.batch(ops, { sync });
  }

  /** Entries with gte ≤ key < lt, in key order, at most `limit`. */
  async range(gte: string, lt: string, limit = -1): Promise<Array<[string, Uint8Array]>> {
    const out: Array<[string, Uint8Array]> = [];
    for await (const [k, v] of this.db.iterator({ gte, lt, limit })) out.push([k, v]);
    return out;
  }

  /** Keys with gte ≤ key < lt, in key order. */
  async keys(gte: string, lt: string): Promise<string[]> {
    const out: string[] = [];
    for await (const k of this.db.keys({ gte, lt })) out.push(k);
    return out;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
