// Validation at the edge: decoded wire data is `unknown` until it passes here. Every field is
// checked for type and bounds; the first problem found is returned as a human-readable reason
// naming the field ("ping.seq: expected a non-negative integer"). Never throws.
import type { MemberInfo, MemberState, MemberStatus, Message, Update } from './types.js';

export const LIMITS = Object.freeze({
  idLengthMax: 128,
  nameLengthMax: 128,
  addressLengthMax: 256,
  zoneLengthMax: 64,
  metaEntriesMax: 32,
  metaKeyLengthMax: 64,
  metaValueLengthMax: 512,
  statesMax: 10_000,
  updatesMax: 256,
});

type Obj = Record<string, unknown>;
type Result<T> = T | Failure;

/** A validation failure; a class so it cannot be confused with a valid string field. */
class Failure {
  constructor(readonly reason: string) {}
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function field(o: Obj, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

function str(o: Obj, key: string, path: string, max: number, nonEmpty: boolean): Result<string> {
  const v = field(o, key);
  if (typeof v !== 'string') return new Failure(`${path}.${key}: expected a string`);
  if (v.length > max) return new Failure(`${path}.${key}: longer than ${max} characters`);
  if (nonEmpty && v.length === 0) return new Failure(`${path}.${key}: must not be empty`);
  return v;
}

function uint(o: Obj, key: string, path: string): Result<number> {
  const v = field(o, key);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    return new Failure(`${path}.${key}: expected a non-negative integer`);
  }
  return v;
}

function bool(o: Obj, key: string, path: string): Result<boolean> {
  const v = field(o, key);
  if (typeof v !== 'boolean') return new Failure(`${path}.${key}: expected a boolean`);
  return v;
}

function meta(v: unknown, path: string): Result<Record<string, string>> {
  if (!isObj(v)) return new Failure(`${path}: expected a map of strings`);
  const keys = Object.keys(v);
  if (keys.length > LIMITS.metaEntriesMax) {
    return new Failure(`${path}: more than ${LIMITS.metaEntriesMax} entries`);
  }
  // A null-prototype object: keys such as "__proto__" stay plain data.
  const out: Record<string, string> = Object.create(null);
  for (const k of keys) {
    if (k.length > LIMITS.metaKeyLengthMax) {
      return new Failure(`${path}: key longer than ${LIMITS.metaKeyLengthMax} characters`);
    }
    const val = v[k];
    if (typeof val !== 'string') return new Failure(`${path}.${k}: expected a string`);
    if (val.length > LIMITS.metaValueLengthMax) {
      return new Failure(`${path}.${k}: longer than ${LIMITS.metaValueLengthMax} characters`);
    }
    out[k] = val;
  }
  return out;
}

function info(v: unknown, path: string): Result<MemberInfo> {
  if (!isObj(v)) return new Failure(`${path}: expected an object`);
  const id = str(v, 'id', path, LIMITS.idLengthMax, true);
  if (id instanceof Failure) return id;
  const name = str(v, 'name', path, LIMITS.nameLengthMax, false);
  if (name instanceof Failure) return name;
  const address = str(v, 'address', path, LIMITS.addressLengthMax, false);
  if (address instanceof Failure) return address;
  const zone = str(v, 'zone', path, LIMITS.zoneLengthMax, false);
  if (zone instanceof Failure) return zone;
  const m = meta(field(v, 'meta'), `${path}.meta`);
  if (m instanceof Failure) return m;
  return { id, name, address, zone, meta: { ...m } };
}

const STATUSES: readonly MemberStatus[] = ['alive', 'suspect', 'failed', 'left'];

function state(v: unknown, path: string): Result<MemberState> {
  if (!isObj(v)) return new Failure(`${path}: expected an object`);
  const i = info(field(v, 'info'), `${path}.info`);
  if (i instanceof Failure) return i;
  const status = field(v, 'status');
  if (typeof status !== 'string' || !(STATUSES as readonly string[]).includes(status)) {
    return new Failure(`${path}.status: expected one of ${STATUSES.join(', ')}`);
  }
  const inc = uint(v, 'inc', path);
  if (inc instanceof Failure) return inc;
  return { info: i, status: status as MemberStatus, inc };
}

function update(v: unknown, path: string): Result<Update> {
  if (!isObj(v)) return new Failure(`${path}: expected an object`);
  const t = field(v, 't');
  const inc = uint(v, 'inc', path);
  switch (t) {
    case 'alive': {
      const i = info(field(v, 'info'), `${path}.info`);
      if (i instanceof Failure) return i;
      if (inc instanceof Failure) return inc;
      return { t, info: i, inc };
    }
    case 'suspect':
    case 'failed': {
      const id = str(v, 'id', path, LIMITS.idLengthMax, true);
      if (id instanceof Failure) return id;
      if (inc instanceof Failure) return inc;
      const from = str(v, 'from', path, LIMITS.idLengthMax, true);
      if (from instanceof Failure) return from;
      return { t, id, inc, from };
    }
    case 'left': {
      const id = str(v, 'id', path, LIMITS.idLengthMax, true);
      if (id instanceof Failure) return id;
      if (inc instanceof Failure) return inc;
      return { t, id, inc };
    }
    default:
      return new Failure(`${path}.t: unknown update type ${describe(t)}`);
  }
}

function list<T>(
  v: unknown,
  path: string,
  max: number,
  item: (v: unknown, p: string) => Result<T>,
): Result<T[]> {
  if (!Array.isArray(v)) return new Failure(`${path}: expected an array`);
  if (v.length > max) return new Failure(`${path}: more than ${max} entries`);
  const out: T[] = [];
  for (let i = 0; i < v.length; i++) {
    const r = item(v[i], `${path}[${i}]`);
    if (r instanceof Failure) return r;
    out.push(r);
  }
  return out;
}

function message(v: unknown): Result<Message> {
  if (!isObj(v)) return new Failure('message: expected an object');
  const t = field(v, 't');
  switch (t) {
    case 'ping': {
      const seq = uint(v, 'seq', t);
      if (seq instanceof Failure) return seq;
      const target = str(v, 'target', t, LIMITS.idLengthMax, true);
      if (target instanceof Failure) return target;
      const suspect = bool(v, 'suspect', t);
      if (suspect instanceof Failure) return suspect;
      return { t, seq, target, suspect };
    }
    case 'ack':
    case 'nack': {
      const seq = uint(v, 'seq', t);
      if (seq instanceof Failure) return seq;
      return { t, seq };
    }
    case 'ping-req': {
      const seq = uint(v, 'seq', t);
      if (seq instanceof Failure) return seq;
      const target = str(v, 'target', t, LIMITS.idLengthMax, true);
      if (target instanceof Failure) return target;
      const targetAddress = str(v, 'targetAddress', t, LIMITS.addressLengthMax, false);
      if (targetAddress instanceof Failure) return targetAddress;
      return { t, seq, target, targetAddress };
    }
    case 'push-pull': {
      const join = bool(v, 'join', t);
      if (join instanceof Failure) return join;
      const reply = bool(v, 'reply', t);
      if (reply instanceof Failure) return reply;
      const states = list(field(v, 'states'), `${t}.states`, LIMITS.statesMax, state);
      if (states instanceof Failure) return states;
      return { t, join, reply, states };
    }
    case 'updates': {
      const updates = list(field(v, 'updates'), `${t}.updates`, LIMITS.updatesMax, update);
      if (updates instanceof Failure) return updates;
      return { t, updates };
    }
    default:
      return new Failure(`message.t: unknown message type ${describe(t)}`);
  }
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 32 ? `${v.slice(0, 32)}…` : v);
  return typeof v;
}

/** Validate a decoded point-to-point message: a fresh, well-typed copy, or the reason it was rejected. */
export function parseMessage(v: unknown): Message | string {
  try {
    const r = message(v);
    return r instanceof Failure ? r.reason : r;
  } catch (err) {
    // Only exotic inputs (proxies, throwing getters) get here; decoded msgpack never does.
    return `message: unreadable (${err instanceof Error ? err.message : 'unknown error'})`;
  }
}

/** Validate a decoded gossip batch (at most LIMITS.updatesMax updates). */
export function parseUpdates(v: unknown): Update[] | string {
  try {
    const r = list(v, 'updates', LIMITS.updatesMax, update);
    return r instanceof Failure ? r.reason : r;
  } catch (err) {
    return `updates: unreadable (${err instanceof Error ? err.message : 'unknown error'})`;
  }
}

/** Validate our own MemberInfo (self, setMeta): the same bounds we impose on everyone else. */
export function checkInfo(v: MemberInfo): string | undefined {
  const r = info(v, 'info');
  return r instanceof Failure ? r.reason : undefined;
}
