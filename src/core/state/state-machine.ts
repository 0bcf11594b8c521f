// The replicated configuration state: a KV store and typed configuration entries. Raft orders the
// commands; every agent applies the committed ones here, in order, and answers reads locally.
//
// Pure and deterministic: the same commands at the same indices give the same state and the same
// results on every agent (no clock, no randomness, no iteration over unordered input).
//
// Change tracking for blocking queries. A query "wake me when anything under X changes after
// index n" needs an index per prefix that (1) reaches i as soon as a change under X is applied at
// i and (2) stays put while nothing under X changes, so watchers do not wake for nothing:
// - a live key contributes its modifyIndex;
// - a deleted key leaves a tombstone with its delete index (tombstones.ts), removed again when the
//   key is re-created (its new modifyIndex is higher);
// - tombstones are bounded; the oldest is forgotten past the bound and its index folds into a
//   floor that every query includes (a forgotten deletion may have been under any prefix).
// kvIndex(X) = max(modifyIndex of live keys under X, tombstones under X, floor). Both sets keep
// chunk maxima (sorted-index.ts), so this costs O(log n + chunks under X), and O(1) for the root.
// Config queries work the same way per entry, with an exact per-kind index (kinds are few) and a
// table index for "any entry".
import { deepFreeze } from './canonical.js';
import { isValidationError, validateCommand } from './command.js';
import { STATE_LIMITS } from './limits.js';
import { RecentRequests } from './requests.js';
import { parseSnapshot } from './snapshot.js';
import { SortedIndex } from './sorted-index.js';
import { formatValidationError } from './text.js';
import { Tombstones } from './tombstones.js';
import type {
  ApplyErrorCode,
  ApplyResult,
  Command,
  ConfigEntry,
  KvEntry,
  StateMachineOptions,
  StateSnapshot,
} from './types.js';

export type { ApplyResult, ConfigEntry, KvEntry, StateMachineOptions, StateSnapshot } from './types.js';

type Limits = Required<StateMachineOptions>;

/** Separates kind and name in entry keys; below every allowed character, so keys sort by (kind, name). */
const SEP = '\u0000';

function entryKey(kind: string, name: string): string {
  return `${kind}${SEP}${name}`;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}

function fail(index: number, code: ApplyErrorCode, message: string): ApplyResult {
  return { ok: false, index, code, message };
}

/**
 * The CAS rule shared by KV and config: the problem with `cas` against the current record, or
 * undefined when the write may go ahead. `what` names the target for messages.
 */
function casProblem(
  what: string,
  cas: number | undefined,
  current: number | undefined,
  isDelete: boolean,
): { code: ApplyErrorCode; message: string } | undefined {
  if (cas === undefined) return undefined;
  if (current === undefined) {
    if (cas === 0) return undefined;
    return {
      code: isDelete ? 'not-found' : 'cas-failed',
      message: `${what} does not exist (cas ${cas} expects modifyIndex ${cas})`,
    };
  }
  if (cas === 0)
    return { code: 'cas-failed', message: `${what} already exists (cas 0 writes only if absent)` };
  if (current !== cas) {
    return { code: 'cas-failed', message: `${what} has modifyIndex ${current}, not ${cas}` };
  }
  return undefined;
}

export class StateMachine {
  private applied = 0;
  private readonly limits: Limits;

  private readonly kv = new Map<string, KvEntry>();
  /** Live keys → modifyIndex, in key order. */
  private kvKeys = new SortedIndex();
  private readonly kvTombs: Tombstones;
  /** Index of the last command that changed any key. */
  private kvTableIndex = 0;

  private readonly config = new Map<string, ConfigEntry>();
  /** Live entries (kind SEP name) → modifyIndex, in (kind, name) order. */
  private configKeys = new SortedIndex();
  private readonly configTombs: Tombstones;
  private configTableIndex = 0;
  /** Last change per kind; bounded by the number of known kinds. */
  private readonly configKindIndex = new Map<string, number>();
  /** Results of the last request ids applied: a copy proposed again gets the first one's. */
  private readonly requests: RecentRequests;

  constructor(options: StateMachineOptions = {}) {
    this.limits = {
      kvEntriesMax: options.kvEntriesMax ?? STATE_LIMITS.kvEntriesMax,
      configEntriesMax: options.configEntriesMax ?? STATE_LIMITS.configEntriesMax,
      kvTombstonesMax: options.kvTombstonesMax ?? STATE_LIMITS.kvTombstonesMax,
      configTombstonesMax: options.configTombstonesMax ?? STATE_LIMITS.configTombstonesMax,
      requestsMax: options.requestsMax ?? STATE_LIMITS.requestsMax,
    };
    this.requests = new RecentRequests(this.limits.requestsMax);
    this.kvTombs = new Tombstones(this.limits.kvTombstonesMax, true);
    this.configTombs = new Tombstones(this.limits.configTombstonesMax, false);
  }

  /** Index of the last entry applied (or skipped); 0 for a fresh machine. */
  get appliedIndex(): number {
    return this.applied;
  }

  /** Live KV keys. */
  get kvSize(): number {
    return this.kv.size;
  }

  /** Live configuration entries. */
  get configSize(): number {
    return this.config.size;
  }

  private advance(index: number): void {
    if (!Number.isSafeInteger(index) || index <= this.applied) {
      throw new Error(`state machine: index ${index} applied after ${this.applied} (indices must increase)`);
    }
    this.applied = index;
  }

  /**
   * Record a committed entry that carries no command (Raft no-op, membership change), so the
   * applied index follows the log. Changes nothing else.
   */
  skip(index: number): void {
    this.advance(index);
  }

  /**
   * Apply a committed command at `index` (greater than every earlier index: asserted, since a gap
   * backwards is a shell bug). `cmd` is decoded data, validated here again: an invalid command is
   * an `invalid` result, not an exception. Every result consumes the index.
   */
  apply(index: number, cmd: unknown): ApplyResult {
    this.advance(index);
    const c = validateCommand(cmd);
    if (isValidationError(c)) return fail(index, 'invalid', formatValidationError(c));
    if (c.rid === undefined) return this.applyValid(index, c);
    // A write proposed again after a leader failure, whose first copy was committed after all:
    // it changes nothing, and its proposer hears what the first copy did (requests.ts).
    const first = this.requests.get(c.rid);
    if (first !== undefined) return first;
    const result = Object.freeze(this.applyValid(index, c));
    this.requests.add(c.rid, result);
    return result;
  }

  private applyValid(index: number, c: Command): ApplyResult {
    switch (c.op) {
      case 'kv-set': {
        const existing = this.kv.get(c.key);
        const bad = casProblem(`key ${quote(c.key)}`, c.cas, existing?.modifyIndex, false);
        if (bad) return fail(index, bad.code, bad.message);
        if (existing === undefined && this.kv.size >= this.limits.kvEntriesMax) {
          return fail(index, 'invalid', `store full: ${this.limits.kvEntriesMax} keys; delete keys first`);
        }
        const entry: KvEntry = Object.freeze({
          key: c.key,
          // A private copy: decoded values may share a buffer the caller reuses.
          value: new Uint8Array(c.value),
          createIndex: existing?.createIndex ?? index,
          modifyIndex: index,
        });
        if (existing === undefined) this.kvTombs.remove(c.key);
        this.kvKeys.set(c.key, index);
        this.kv.set(c.key, entry);
        this.kvTableIndex = index;
        return { ok: true, index, op: c.op, changed: 1 };
      }
      case 'kv-delete': {
        const existing = this.kv.get(c.key);
        const bad = casProblem(`key ${quote(c.key)}`, c.cas, existing?.modifyIndex, true);
        if (bad) return fail(index, bad.code, bad.message);
        if (existing === undefined) return { ok: true, index, op: c.op, changed: 0 };
        this.kvRemove(c.key, index);
        this.kvTableIndex = index;
        return { ok: true, index, op: c.op, changed: 1 };
      }
      case 'kv-delete-tree': {
        // Bounded by the number of live keys (kvEntriesMax); sorted, as addSorted needs.
        const keys = this.kvKeys.removeUnder(c.prefix);
        for (const k of keys) this.kv.delete(k);
        this.kvTombs.addSorted(keys, index);
        if (keys.length > 0) this.kvTableIndex = index;
        return { ok: true, index, op: c.op, changed: keys.length };
      }
      case 'config-set': {
        const key = entryKey(c.kind, c.name);
        const existing = this.config.get(key);
        const what = `${c.kind} ${quote(c.name)}`;
        const bad = casProblem(what, c.cas, existing?.modifyIndex, false);
        if (bad) return fail(index, bad.code, bad.message);
        if (existing === undefined && this.config.size >= this.limits.configEntriesMax) {
          return fail(
            index,
            'invalid',
            `store full: ${this.limits.configEntriesMax} configuration entries; delete entries first`,
          );
        }
        const entry: ConfigEntry = deepFreeze({
          kind: c.kind,
          name: c.name,
          // validateCommand returned a fresh canonical copy; nobody else holds it.
          spec: c.spec,
          createIndex: existing?.createIndex ?? index,
          modifyIndex: index,
        });
        if (existing === undefined) this.configTombs.remove(key);
        this.configKeys.set(key, index);
        this.config.set(key, entry);
        this.configChanged(c.kind, index);
        return { ok: true, index, op: c.op, changed: 1 };
      }
      case 'config-delete': {
        const key = entryKey(c.kind, c.name);
        const existing = this.config.get(key);
        const bad = casProblem(`${c.kind} ${quote(c.name)}`, c.cas, existing?.modifyIndex, true);
        if (bad) return fail(index, bad.code, bad.message);
        if (existing === undefined) return { ok: true, index, op: c.op, changed: 0 };
        this.config.delete(key);
        this.configKeys.remove(key);
        this.configTombs.add(key, index);
        this.configChanged(c.kind, index);
        return { ok: true, index, op: c.op, changed: 1 };
      }
    }
  }

  private kvRemove(key: string, index: number): void {
    this.kv.delete(key);
    this.kvKeys.remove(key);
    this.kvTombs.add(key, index);
  }

  private configChanged(kind: string, index: number): void {
    this.configKindIndex.set(kind, index);
    this.configTableIndex = index;
  }

  // ---- reads -------------------------------------------------------------------------------

  kvGet(key: string): KvEntry | undefined {
    return this.kv.get(key);
  }

  /** Entries whose key starts with `prefix`, sorted by key, at most `limit`. */
  kvList(prefix: string, limit = Number.POSITIVE_INFINITY): KvEntry[] {
    return this.kvKeys.range(prefix, limit).map((k) => this.kv.get(k) as KvEntry);
  }

  /** Keys starting with `prefix`, sorted, at most `limit` (cheaper than kvList when values are not wanted). */
  kvKeyList(prefix: string, limit = Number.POSITIVE_INFINITY): string[] {
    return this.kvKeys.range(prefix, limit);
  }

  /**
   * The index a blocking query on `prefix` waits past: at least the index of every change to a key
   * under it, unchanged while none happens (see the header). '' covers every key. 0 before any
   * change; a shell that must not answer index 0 clamps it to 1, as Consul does.
   */
  kvIndex(prefix: string): number {
    if (prefix === '') return this.kvTableIndex;
    return Math.max(this.kvTombs.floorIndex, this.kvTombs.maxUnder(prefix), this.kvKeys.maxUnder(prefix));
  }

  /** Like kvIndex for exactly one key (no wake-ups for keys that merely share its prefix). O(1). */
  kvKeyIndex(key: string): number {
    return this.kv.get(key)?.modifyIndex ?? this.kvTombs.get(key) ?? this.kvTombs.floorIndex;
  }

  configGet(kind: string, name: string): ConfigEntry | undefined {
    return this.config.get(entryKey(kind, name));
  }

  /** Entries of one kind sorted by name, or of every kind sorted by (kind, name). */
  configList(kind?: string): ConfigEntry[] {
    const keys = this.configKeys.range(kind === undefined ? '' : `${kind}${SEP}`);
    return keys.map((k) => this.config.get(k) as ConfigEntry);
  }

  /**
   * The index a blocking query on configuration waits past: of every entry (no arguments), of one
   * kind, or of one entry. Same rule as kvIndex.
   */
  configIndex(kind?: string, name?: string): number {
    if (kind === undefined) return this.configTableIndex;
    if (name === undefined) return this.configKindIndex.get(kind) ?? 0;
    const key = entryKey(kind, name);
    return this.config.get(key)?.modifyIndex ?? this.configTombs.get(key) ?? this.configTombs.floorIndex;
  }

  // ---- snapshots ---------------------------------------------------------------------------

  /**
   * The whole state as plain data for the shell to encode. Shares the (immutable) records with the
   * live state; later applies replace records rather than change them, so the snapshot stays valid.
   */
  snapshot(): StateSnapshot {
    return {
      format: 1,
      appliedIndex: this.applied,
      kv: this.kvKeys.range('').map((k) => this.kv.get(k) as KvEntry),
      kvTombstones: this.kvTombs.entries().map(([key, index]) => ({ key, index })),
      kvTombstoneFloor: this.kvTombs.floorIndex,
      kvIndex: this.kvTableIndex,
      config: this.configList(),
      configTombstones: this.configTombs.entries().map(([key, index]) => {
        const [kind, name] = key.split(SEP) as [string, string];
        return { kind, name, index };
      }),
      configTombstoneFloor: this.configTombs.floorIndex,
      configIndex: this.configTableIndex,
      configKindIndexes: [...this.configKindIndex.entries()]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([kind, index]) => ({ kind, index })),
      requests: this.requests.entries(),
    };
  }

  /**
   * A machine holding a snapshot's state. Validates everything (shape, bounds, order, every entry
   * against the current rules); throws an Error naming the first problem on corrupt input.
   */
  static restore(s: unknown, options: StateMachineOptions = {}): StateMachine {
    const snap = parseSnapshot(s);
    const m = new StateMachine(options);
    m.applied = snap.appliedIndex;
    for (const e of snap.kv) m.kv.set(e.key, e);
    m.kvKeys = SortedIndex.fromSorted(
      snap.kv.map((e) => e.key),
      snap.kv.map((e) => e.modifyIndex),
    );
    m.kvTombs.setFloor(snap.kvTombstoneFloor);
    for (const t of snap.kvTombstones) m.kvTombs.add(t.key, t.index);
    m.kvTableIndex = snap.kvIndex;
    for (const e of snap.config) m.config.set(entryKey(e.kind, e.name), e);
    m.configKeys = SortedIndex.fromSorted(
      snap.config.map((e) => entryKey(e.kind, e.name)),
      snap.config.map((e) => e.modifyIndex),
    );
    m.configTombs.setFloor(snap.configTombstoneFloor);
    for (const t of snap.configTombstones) m.configTombs.add(entryKey(t.kind, t.name), t.index);
    m.configTableIndex = snap.configIndex;
    for (const k of snap.configKindIndexes) m.configKindIndex.set(k.kind, k.index);
    // Oldest first; a snapshot from a machine with a larger bound keeps its newest.
    for (const r of snap.requests ?? []) m.requests.add(r.rid, r.result);
    try {
      m.checkInvariants();
    } catch (e) {
      throw new Error(`state snapshot: inconsistent (${e instanceof Error ? e.message : String(e)})`);
    }
    return m;
  }

  /**
   * Check every invariant (tests, the simulator, restore). O(state size): not for the apply path.
   */
  checkInvariants(): void {
    this.kvKeys.checkInvariants();
    this.kvTombs.checkInvariants();
    this.configKeys.checkInvariants();
    this.configTombs.checkInvariants();
    this.requests.checkInvariants(this.applied);
    if (this.kvKeys.size !== this.kv.size) throw new Error('state machine: kv key index out of step');
    if (this.configKeys.size !== this.config.size)
      throw new Error('state machine: config key index out of step');
    const bound = (what: string, i: number, max: number) => {
      if (i > max) throw new Error(`state machine: ${what} ${i} beyond ${max}`);
    };
    bound('kv index', this.kvTableIndex, this.applied);
    bound('config index', this.configTableIndex, this.applied);
    bound('kv tombstone floor', this.kvTombs.floorIndex, this.kvTableIndex);
    bound('config tombstone floor', this.configTombs.floorIndex, this.configTableIndex);
    for (const [key, at] of this.kvKeys.entries()) {
      if (this.kv.get(key)?.modifyIndex !== at) throw new Error(`state machine: kv ${quote(key)} misindexed`);
    }
    for (const [key, at] of this.configKeys.entries()) {
      if (this.config.get(key)?.modifyIndex !== at)
        throw new Error(`state machine: config ${quote(key)} misindexed`);
    }
    for (const [key, e] of this.kv) {
      if (e.key !== key) throw new Error(`state machine: kv ${quote(key)} holds ${quote(e.key)}`);
      if (!(e.createIndex >= 1 && e.createIndex <= e.modifyIndex)) {
        throw new Error(
          `state machine: kv ${quote(key)} created at ${e.createIndex}, modified at ${e.modifyIndex}`,
        );
      }
      bound(`kv ${quote(key)} modifyIndex`, e.modifyIndex, this.kvTableIndex);
      if (this.kvTombs.get(key) !== undefined)
        throw new Error(`state machine: kv ${quote(key)} live and deleted`);
    }
    for (const [key, i] of this.kvTombs.entries()) {
      if (this.kv.has(key)) throw new Error(`state machine: kv ${quote(key)} deleted and live`);
      bound(`kv ${quote(key)} delete index`, i, this.kvTableIndex);
    }
    for (const [key, e] of this.config) {
      if (entryKey(e.kind, e.name) !== key) throw new Error(`state machine: config ${quote(key)} misfiled`);
      if (!(e.createIndex >= 1 && e.createIndex <= e.modifyIndex)) {
        throw new Error(`state machine: ${e.kind} ${quote(e.name)} created after it was modified`);
      }
      bound(`${e.kind} ${quote(e.name)} modifyIndex`, e.modifyIndex, this.configKindIndex.get(e.kind) ?? 0);
      if (this.configTombs.get(key) !== undefined)
        throw new Error(`state machine: ${quote(key)} live and deleted`);
    }
    for (const [key, i] of this.configTombs.entries()) {
      if (this.config.has(key)) throw new Error(`state machine: config ${quote(key)} deleted and live`);
      const kind = key.split(SEP)[0] as string;
      bound(`config ${quote(key)} delete index`, i, this.configKindIndex.get(kind) ?? 0);
    }
    for (const i of this.configKindIndex.values()) bound('config kind index', i, this.configTableIndex);
  }
}
