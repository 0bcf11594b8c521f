// Types of the configuration state machine: the commands Raft orders, the records every agent
// holds, the results of applying a command, and the snapshot shape.
//
// Everything here is plain data (strings, numbers, Uint8Array, plain objects and arrays) so the
// shell can msgpack-encode commands into Raft entries and snapshots into LevelDB without adapters.

/** A problem with a command, an entry file or a spec, naming the offending field ("spec.protocol"). */
export interface ValidationError {
  field: string;
  message: string;
}

/**
 * What a client proposes. `cas` is compare-and-set on the target's modifyIndex: on a set, 0 means
 * "only if absent" and n > 0 means "only if its modifyIndex is n"; on a delete it must be > 0.
 */
export type Command = CommandBody & {
  /**
   * The request id the proposing agent gave this write, so a copy proposed again after a leader
   * failure applies once (requests.ts). Absent in commands that never needed it.
   */
  rid?: string;
};

type CommandBody =
  | { op: 'kv-set'; key: string; value: Uint8Array; cas?: number }
  | { op: 'kv-delete'; key: string; cas?: number }
  /** Delete every key starting with `prefix` ('' deletes every key, as Consul's `?recurse` on the root). */
  | { op: 'kv-delete-tree'; prefix: string }
  | { op: 'config-set'; kind: string; name: string; spec: unknown; cas?: number }
  | { op: 'config-delete'; kind: string; name: string; cas?: number };

export type CommandOp = Command['op'];

/** A KV entry as held by every agent. Records are frozen and replaced on change; never mutate `value`. */
export interface KvEntry {
  readonly key: string;
  readonly value: Uint8Array;
  /** Index of the command that created the key (a re-created key gets a new one). */
  readonly createIndex: number;
  /** Index of the command that last wrote it: the value CAS compares against. */
  readonly modifyIndex: number;
}

/** A configuration entry. `spec` is the kind's canonical form, deeply frozen. */
export interface ConfigEntry {
  readonly kind: string;
  readonly name: string;
  readonly spec: unknown;
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/**
 * - `invalid`: the command failed validation, or the store is full (message starts "store full").
 * - `cas-failed`: the target's modifyIndex is not the `cas` given (including "exists" for cas 0 and
 *   "does not exist" for a set with cas > 0).
 * - `not-found`: a delete with `cas` of a key or entry that does not exist.
 */
export type ApplyErrorCode = 'invalid' | 'cas-failed' | 'not-found';

/**
 * The outcome of one committed command. Failures are results, never exceptions: they consume the
 * index like any other entry, so every agent reaches the same state.
 */
export type ApplyResult =
  | {
      ok: true;
      index: number;
      /** The command applied. Always set by apply(); absent only on results a shell makes up for
       * entries without a command (Raft no-ops), which is why it is optional. */
      op?: CommandOp;
      /** Keys or entries written or removed: 1 for a set, 0 or 1 for a delete, n for a delete-tree. */
      changed?: number;
    }
  | { ok: false; index: number; code: ApplyErrorCode; message: string };

/**
 * Limits of one state machine. They must be identical on every agent (they decide whether a
 * command succeeds); options exist for tests and the simulator, not for operators.
 */
export interface StateMachineOptions {
  /** Live KV keys; a set of a new key beyond it fails with "store full". */
  kvEntriesMax?: number;
  /** Live configuration entries; likewise. */
  configEntriesMax?: number;
  /** Remembered KV deletions for blocking queries (see change tracking in state-machine.ts). */
  kvTombstonesMax?: number;
  /** Remembered configuration deletions. */
  configTombstonesMax?: number;
  /** Request ids remembered so a retried write applies once (requests.ts). */
  requestsMax?: number;
}

/** A deletion remembered for blocking queries. */
export interface KvTombstone {
  key: string;
  index: number;
}

export interface ConfigTombstone {
  kind: string;
  name: string;
  index: number;
}

/**
 * A point-in-time copy of the whole state, plain data for the shell to encode. Records are shared
 * with the live state (they are immutable), so taking a snapshot costs O(entries) pointers.
 */
export interface StateSnapshot {
  format: 1;
  appliedIndex: number;
  /** Sorted by key. */
  kv: KvEntry[];
  /** In deletion order (non-decreasing index). */
  kvTombstones: KvTombstone[];
  /** Highest delete index of a forgotten tombstone (0 if none was forgotten). */
  kvTombstoneFloor: number;
  /** Index of the last command that changed any KV key. */
  kvIndex: number;
  /** Sorted by kind, then name. */
  config: ConfigEntry[];
  configTombstones: ConfigTombstone[];
  configTombstoneFloor: number;
  configIndex: number;
  /** Last change per kind, sorted by kind. */
  configKindIndexes: { kind: string; index: number }[];
  /**
   * The last request ids applied, oldest first, with the result each got (requests.ts). Absent in
   * snapshots of agents that did not keep them: read as none.
   */
  requests?: { rid: string; result: ApplyResult }[];
}
