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
} as const;

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

  async close(): Promise<void> {
    await this.db.close();
  }
}
