// Validation of a decoded state snapshot (from LevelDB or from a peer). A snapshot is trusted no
// more than a command: every record is checked against the same rules as on apply, and order and
// index bounds are checked so the restored machine's invariants hold. Throws an Error naming the
// first problem ("state snapshot: kv[3].key: must not be empty").
import { deepFreeze } from './canonical.js';
import { checkKey, checkKind, checkName, checkSpec } from './command.js';
import { RID_PATTERN } from './requests.js';
import { describe, field, formatValidationError, isObj, type Obj } from './text.js';
import type {
  ApplyErrorCode,
  ApplyResult,
  CommandOp,
  ConfigEntry,
  ConfigTombstone,
  KvEntry,
  KvTombstone,
  StateSnapshot,
  ValidationError,
} from './types.js';

class SnapshotError extends Error {
  constructor(path: string, message: string) {
    super(`state snapshot: ${path}: ${message}`);
  }
}

function obj(v: unknown, path: string): Obj {
  if (!isObj(v)) throw new SnapshotError(path, `must be an object, not ${describe(v)}`);
  return v;
}

function index(o: Obj, key: string, path: string, max: number, min = 0): number {
  const v = field(o, key);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new SnapshotError(`${path}.${key}`, `must be an integer from ${min} to ${max}, not ${describe(v)}`);
  }
  return v;
}

function array(o: Obj, key: string, path: string): unknown[] {
  const v = field(o, key);
  if (!Array.isArray(v)) throw new SnapshotError(`${path}.${key}`, `must be an array, not ${describe(v)}`);
  return v;
}

function check(e: ValidationError | undefined, path: string): void {
  if (e !== undefined) throw new SnapshotError(path, formatValidationError(e));
}

function str(o: Obj, key: string): string {
  return field(o, key) as string;
}

/** Validate a decoded snapshot; a fresh copy (records frozen, values copied) or an Error thrown. */
export function parseSnapshot(s: unknown): StateSnapshot {
  const root = obj(s, 'snapshot');
  if (field(root, 'format') !== 1) {
    throw new SnapshotError(
      'format',
      `unsupported format ${describe(field(root, 'format'))} (this agent reads 1)`,
    );
  }
  const applied = index(root, 'appliedIndex', 'snapshot', Number.MAX_SAFE_INTEGER);
  const kvIndex = index(root, 'kvIndex', 'snapshot', applied);
  const configIndex = index(root, 'configIndex', 'snapshot', applied);

  const kv: KvEntry[] = array(root, 'kv', 'snapshot').map((v, i) => {
    const path = `kv[${i}]`;
    const o = obj(v, path);
    check(checkKey(field(o, 'key'), 'key'), path);
    const value = field(o, 'value');
    if (!(value instanceof Uint8Array)) throw new SnapshotError(`${path}.value`, 'must be bytes');
    const modifyIndex = index(o, 'modifyIndex', path, kvIndex, 1);
    const createIndex = index(o, 'createIndex', path, modifyIndex, 1);
    return Object.freeze({ key: str(o, 'key'), value: new Uint8Array(value), createIndex, modifyIndex });
  });
  for (let i = 1; i < kv.length; i++) {
    if (!((kv[i - 1] as KvEntry).key < (kv[i] as KvEntry).key)) {
      throw new SnapshotError(`kv[${i}].key`, 'keys must be sorted and distinct');
    }
  }

  const kvTombstoneFloor = index(root, 'kvTombstoneFloor', 'snapshot', kvIndex);
  let prev = 0;
  const kvTombstones: KvTombstone[] = array(root, 'kvTombstones', 'snapshot').map((v, i) => {
    const path = `kvTombstones[${i}]`;
    const o = obj(v, path);
    check(checkKey(field(o, 'key'), 'key'), path);
    prev = index(o, 'index', path, kvIndex, Math.max(prev, 1));
    return { key: str(o, 'key'), index: prev };
  });

  const kindIndexes = new Map<string, number>();
  const configKindIndexes = array(root, 'configKindIndexes', 'snapshot').map((v, i) => {
    const path = `configKindIndexes[${i}]`;
    const o = obj(v, path);
    check(checkKind(field(o, 'kind')), path);
    const kind = str(o, 'kind');
    if (kindIndexes.has(kind)) throw new SnapshotError(`${path}.kind`, 'listed twice');
    const at = index(o, 'index', path, configIndex, 1);
    kindIndexes.set(kind, at);
    return { kind, index: at };
  });
  const kindMax = (kind: string): number => kindIndexes.get(kind) ?? 0;

  const config: ConfigEntry[] = array(root, 'config', 'snapshot').map((v, i) => {
    const path = `config[${i}]`;
    const o = obj(v, path);
    check(checkKind(field(o, 'kind')), path);
    const kind = str(o, 'kind');
    check(checkName(kind, field(o, 'name')), path);
    const spec = checkSpec(kind, field(o, 'spec'), 'spec', str(o, 'name'));
    if (!('spec' in spec)) check(spec, path);
    const modifyIndex = index(o, 'modifyIndex', path, kindMax(kind), 1);
    const createIndex = index(o, 'createIndex', path, modifyIndex, 1);
    const stored = (spec as { spec: unknown }).spec;
    return deepFreeze({ kind, name: str(o, 'name'), spec: stored, createIndex, modifyIndex });
  });
  for (let i = 1; i < config.length; i++) {
    const a = config[i - 1] as ConfigEntry;
    const b = config[i] as ConfigEntry;
    if (!(a.kind < b.kind || (a.kind === b.kind && a.name < b.name))) {
      throw new SnapshotError(`config[${i}]`, 'entries must be sorted by kind and name, and distinct');
    }
  }

  const configTombstoneFloor = index(root, 'configTombstoneFloor', 'snapshot', configIndex);
  prev = 0;
  const configTombstones: ConfigTombstone[] = array(root, 'configTombstones', 'snapshot').map((v, i) => {
    const path = `configTombstones[${i}]`;
    const o = obj(v, path);
    check(checkKind(field(o, 'kind')), path);
    const kind = str(o, 'kind');
    check(checkName(kind, field(o, 'name')), path);
    prev = index(o, 'index', path, kindMax(kind), Math.max(prev, 1));
    return { kind, name: str(o, 'name'), index: prev };
  });

  const requests = parseRequests(root, applied);

  return {
    format: 1,
    appliedIndex: applied,
    kv,
    kvTombstones,
    kvTombstoneFloor,
    kvIndex,
    config,
    configTombstones,
    configTombstoneFloor,
    configIndex,
    configKindIndexes,
    requests,
  };
}

const OPS: readonly string[] = ['kv-set', 'kv-delete', 'kv-delete-tree', 'config-set', 'config-delete'];
const APPLY_ERROR_CODES: readonly string[] = ['invalid', 'cas-failed', 'not-found'];
/** Longer than any message apply() writes (names are quoted up to 80 characters). */
const RESULT_MESSAGE_MAX = 4096;

/** The remembered request ids (requests.ts): oldest first, results in apply order. */
function parseRequests(root: Obj, applied: number): { rid: string; result: ApplyResult }[] {
  if (field(root, 'requests') === undefined) return [];
  const seen = new Set<string>();
  let prev = 0;
  return array(root, 'requests', 'snapshot').map((v, i) => {
    const path = `requests[${i}]`;
    const o = obj(v, path);
    const rid = field(o, 'rid');
    if (typeof rid !== 'string' || !RID_PATTERN.test(rid))
      throw new SnapshotError(`${path}.rid`, 'must be a request id');
    if (seen.has(rid)) throw new SnapshotError(`${path}.rid`, 'listed twice');
    seen.add(rid);
    const r = obj(field(o, 'result'), `${path}.result`);
    prev = index(r, 'index', `${path}.result`, applied, prev + 1);
    const ok = field(r, 'ok');
    let result: ApplyResult;
    if (ok === true) {
      const op = field(r, 'op');
      if (typeof op !== 'string' || !OPS.includes(op))
        throw new SnapshotError(`${path}.result.op`, 'must be an op');
      const changed = index(r, 'changed', `${path}.result`, Number.MAX_SAFE_INTEGER);
      result = { ok: true, index: prev, op: op as CommandOp, changed };
    } else if (ok === false) {
      const code = field(r, 'code');
      const message = field(r, 'message');
      if (typeof code !== 'string' || !APPLY_ERROR_CODES.includes(code))
        throw new SnapshotError(`${path}.result.code`, 'must be an apply error code');
      if (typeof message !== 'string' || message.length > RESULT_MESSAGE_MAX)
        throw new SnapshotError(
          `${path}.result.message`,
          `must be a string of at most ${RESULT_MESSAGE_MAX} characters`,
        );
      result = { ok: false, index: prev, code: code as ApplyErrorCode, message };
    } else {
      throw new SnapshotError(`${path}.result.ok`, `must be true or false, not ${describe(ok)}`);
    }
    return { rid, result: Object.freeze(result) };
  });
}
