// Edge validation of Raft messages from the wire: decoded msgpack is `unknown` until every field
// has been checked here. Returns the message, or a reason naming the field.
import type { ConfChange, Entry, Message, Snapshot } from '../core/raft/types.js';

const ID_MAX = 128;
const CTX_MAX = 128;
export const RAFT_LIMITS = {
  entriesPerMessageMax: 4096,
  entryBytesMax: 1024 * 1024,
  snapshotBytesMax: 256 * 1024 * 1024,
} as const;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isIdx = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isId = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= ID_MAX;
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

class Invalid extends Error {}
function need(cond: boolean, field: string, what: string): void {
  if (!cond) throw new Invalid(`${field}: ${what}`);
}

function conf(v: unknown, field: string): ConfChange {
  need(isObj(v), field, 'expected an object');
  const o = v as Obj;
  need(o.op === 'add-learner' || o.op === 'promote' || o.op === 'remove', `${field}.op`, 'unknown op');
  need(isId(o.node), `${field}.node`, 'expected a node id');
  return { op: o.op as ConfChange['op'], node: o.node as string };
}

function entry(v: unknown, field: string): Entry {
  need(isObj(v), field, 'expected an object');
  const o = v as Obj;
  need(isIdx(o.term), `${field}.term`, 'expected a non-negative integer');
  need(isIdx(o.index) && (o.index as number) > 0, `${field}.index`, 'expected a positive integer');
  need(o.type === 'normal' || o.type === 'conf' || o.type === 'noop', `${field}.type`, 'unknown entry type');
  const data = o.data ?? new Uint8Array(0);
  need(isBytes(data), `${field}.data`, 'expected bytes');
  need((data as Uint8Array).length <= RAFT_LIMITS.entryBytesMax, `${field}.data`, 'too large');
  const e: Entry = {
    term: o.term as number,
    index: o.index as number,
    type: o.type as Entry['type'],
    data: data as Uint8Array,
  };
  if (o.type === 'conf') e.conf = conf(o.conf, `${field}.conf`);
  return e;
}

function ids(v: unknown, field: string): string[] {
  need(Array.isArray(v) && v.length <= 64, field, 'expected a list of at most 64 node ids');
  for (const [i, x] of (v as unknown[]).entries()) need(isId(x), `${field}[${i}]`, 'expected a node id');
  return v as string[];
}

function snapshot(v: unknown): Snapshot {
  need(isObj(v), 'snapshot', 'expected an object');
  const o = v as Obj;
  need(isObj(o.meta), 'snapshot.meta', 'expected an object');
  const m = o.meta as Obj;
  need(isIdx(m.index) && isIdx(m.term), 'snapshot.meta', 'index and term must be non-negative integers');
  need(isObj(m.conf), 'snapshot.meta.conf', 'expected an object');
  const c = m.conf as Obj;
  const voters = ids(c.voters, 'snapshot.meta.conf.voters');
  const learners = ids(c.learners, 'snapshot.meta.conf.learners');
  need(
    isBytes(o.data) && (o.data as Uint8Array).length <= RAFT_LIMITS.snapshotBytesMax,
    'snapshot.data',
    'expected bytes within the limit',
  );
  return {
    meta: { index: m.index as number, term: m.term as number, conf: { voters, learners } },
    data: o.data as Uint8Array,
  };
}

export function parseRaftMessage(v: unknown, from: string): Message | string {
  try {
    need(isObj(v), 'message', 'expected an object');
    const o = v as Obj;
    need(isIdx(o.term), 'term', 'expected a non-negative integer');
    need(isId(o.to), 'to', 'expected a node id');
    // The sender is who the authenticated connection says it is, never what the message claims.
    need(o.from === from, 'from', 'does not match the connection’s peer id');
    const base = { term: o.term as number, from, to: o.to as string };
    switch (o.t) {
      case 'pre-vote':
      case 'vote':
        need(isIdx(o.lastIndex) && isIdx(o.lastTerm), 'lastIndex/lastTerm', 'expected non-negative integers');
        return {
          ...base,
          t: o.t,
          lastIndex: o.lastIndex as number,
          lastTerm: o.lastTerm as number,
          transfer: o.transfer === true,
        };
      case 'pre-vote-resp':
      case 'vote-resp':
        need(typeof o.reject === 'boolean', 'reject', 'expected a boolean');
        return { ...base, t: o.t, reject: o.reject as boolean };
      case 'append': {
        need(
          isIdx(o.prevIndex) && isIdx(o.prevTerm) && isIdx(o.commit),
          'prevIndex/prevTerm/commit',
          'expected non-negative integers',
        );
        need(
          Array.isArray(o.entries) && o.entries.length <= RAFT_LIMITS.entriesPerMessageMax,
          'entries',
          'expected a bounded list',
        );
        const entries = (o.entries as unknown[]).map((e, i) => entry(e, `entries[${i}]`));
        return {
          ...base,
          t: 'append',
          prevIndex: o.prevIndex as number,
          prevTerm: o.prevTerm as number,
          entries,
          commit: o.commit as number,
        };
      }
      case 'append-resp':
        need(
          isIdx(o.index) && isIdx(o.hint) && typeof o.reject === 'boolean',
          'index/hint/reject',
          'bad types',
        );
        return {
          ...base,
          t: 'append-resp',
          index: o.index as number,
          reject: o.reject as boolean,
          hint: o.hint as number,
        };
      case 'heartbeat':
        need(isIdx(o.commit), 'commit', 'expected a non-negative integer');
        need(typeof o.ctx === 'string' && o.ctx.length <= CTX_MAX, 'ctx', 'expected a short string');
        return { ...base, t: 'heartbeat', commit: o.commit as number, ctx: o.ctx as string };
      case 'heartbeat-resp':
        need(typeof o.ctx === 'string' && o.ctx.length <= CTX_MAX, 'ctx', 'expected a short string');
        return { ...base, t: 'heartbeat-resp', ctx: o.ctx as string };
      case 'snapshot':
        return { ...base, t: 'snapshot', snapshot: snapshot(o.snapshot) };
      case 'timeout-now':
        return { ...base, t: 'timeout-now' };
      default:
        return `t: unknown message type ${JSON.stringify(String(o.t).slice(0, 32))}`;
    }
  } catch (err) {
    if (err instanceof Invalid) return err.message;
    throw err;
  }
}
