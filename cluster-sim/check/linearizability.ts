// Linearizability checker for a key-value register history, in the style of Porcupine.
//
// A history is linearizable if each op can be given one instant between its call and its return such
// that replaying the ops in that order against a register gives the outputs observed (Herlihy & Wing
// 1990). Finding that order is NP-complete, so we search:
// - P-compositionality: keys are independent registers, and a history is linearizable iff each key's
//   sub-history is. One search over n ops becomes several small ones.
// - Wing & Gong (1993): every op's call and return go on one list sorted by time. Walking from the
//   head, any call met before the first return may be linearized next. Linearizing it lifts both its
//   entries out of the list and the walk restarts at the head. Meeting a return means that op had to
//   be linearized already: backtrack and try the next call after the last choice. Backtracking with
//   an empty stack proves that no order exists.
// - Lowe (2017): memoise each (set of linearized ops, register state) reached. Reaching one again
//   would explore the same subtree, so the search skips it. This bounds the search by the ops in flight
//   at once rather than by n!.
// - Porcupine (Anish Athalye): the doubly linked list with lift/unlift, the bitset-plus-state cache,
//   and, as in Knossos, a return time of +Infinity for an unknown outcome: it may take effect at any
//   point after its call, and placing it after every completed op is the same as it never happening.
//
// Unknown outcomes stay open to the end, and each doubles the states a refutation must visit. Four
// reductions keep the verdicts the same (the brute-force property test checks this): (1) values
// that nothing compares the register with are one state; (2) unknown ops with the same effect are
// interchangeable, so only the earliest-called unused one of each class is tried; (3) an unknown op
// that changes nothing is not placed; (4) the cache counts the unknown ops used per class and skips a
// state that a failed one covers: same completed ops and state, and no more used of any class. Each
// node tries completed ops before unknown ones, so the covering state is usually explored first.
//
// Time is compared conservatively: only a strictly earlier return precedes a call, so at equal times
// calls sort before returns and the two ops count as concurrent.
//
// Pure: no I/O, no clock, no randomness. A step budget bounds each key's search.

/** What a client asked. Values in a generated workload are unique per write, which is what lets CAS
 * be expressed on values ("expect") instead of on modify indexes. `expect: null` means "only if absent". */
export type KvInput =
  | { op: 'read'; key: string }
  | { op: 'write'; key: string; value: string }
  | { op: 'delete'; key: string }
  | { op: 'cas'; key: string; expect: string | null; value: string };

/** What the system answered. `read` gives the value or null (absent); `write`/`delete` give ok;
 * `cas` gives whether it swapped. */
export type KvOutput = { value: string | null } | { ok: boolean };

export interface HistoryOp {
  id: number; // unique per history
  client: number; // the client (process) that issued it; a client has at most one op in flight
  input: KvInput;
  /** undefined: the outcome is unknown (timed out, connection lost): it may or may not have taken effect. */
  output: KvOutput | undefined;
  callMs: number;
  /** undefined when output is undefined (the op may take effect at any time after its call). */
  returnMs: number | undefined;
}

export type LinearizabilityResult =
  | { verdict: 'ok'; keys: number; ops: number }
  /** A key whose history has no linearization. `ops` is that key's history (sorted by callMs), and
   * `longestPrefix` the ids of the longest linearized prefix found, to help a reader find the point of failure. */
  | { verdict: 'violation'; key: string; ops: HistoryOp[]; longestPrefix: number[]; message: string }
  /** The search for some key exceeded its step budget: neither proven nor refuted. */
  | { verdict: 'unknown'; key: string; ops: number; message: string };

export interface CheckOptions {
  /** search steps per key before giving up (default 1_000_000) */
  stepsMaxPerKey?: number;
}

// A step is one list entry visited. Proving a linearizable key costs a few steps per op; a million
// steps takes about a second, which bounds the time spent on a key that cannot be decided.
const STEPS_MAX_PER_KEY_DEFAULT = 1_000_000;

export function checkLinearizable(
  history: readonly HistoryOp[],
  opts: CheckOptions = {},
): LinearizabilityResult {
  const stepsMaxPerKey = opts.stepsMaxPerKey ?? STEPS_MAX_PER_KEY_DEFAULT;
  if (!Number.isSafeInteger(stepsMaxPerKey) || stepsMaxPerKey < 1) {
    throw new Error(`stepsMaxPerKey must be a positive integer, got ${stepsMaxPerKey}`);
  }
  validateHistory(history);
  const byKey = new Map<string, HistoryOp[]>();
  for (const op of history) {
    const ops = byKey.get(op.input.key);
    if (ops === undefined) byKey.set(op.input.key, [op]);
    else ops.push(op);
  }
  // A violation is a proof, so it wins over an 'unknown' on another key: every key is checked.
  let undecided: LinearizabilityResult | undefined;
  for (const key of [...byKey.keys()].sort()) {
    const ops = byKey.get(key)!.sort((a, b) => a.callMs - b.callMs || a.id - b.id);
    const result = checkKey(key, ops, stepsMaxPerKey);
    if (result.verdict === 'violation') return result;
    if (result.verdict === 'unknown') undecided ??= result;
  }
  return undecided ?? { verdict: 'ok', keys: byKey.size, ops: history.length };
}

/** Throws on a history the search cannot interpret, naming the op, so the recorder can be fixed. */
function validateHistory(history: readonly HistoryOp[]): void {
  const ids = new Set<number>();
  for (const op of history) {
    const at = `history op ${op.id}`;
    if (ids.has(op.id)) throw new Error(`${at}: duplicate id (ids must be unique per history)`);
    ids.add(op.id);
    if (!Number.isFinite(op.callMs)) throw new Error(`${at}: callMs must be a finite number`);
    // +Infinity marks an unknown outcome inside the search, so a completed op may not use it.
    if (op.returnMs !== undefined && !Number.isFinite(op.returnMs)) {
      throw new Error(`${at}: returnMs must be a finite number (leave it undefined for an unknown outcome)`);
    }
    if ((op.output === undefined) !== (op.returnMs === undefined)) {
      const has = op.output === undefined ? 'a returnMs but no output' : 'an output but no returnMs';
      throw new Error(
        `${at}: has ${has} (both are set when it returned, neither when its outcome is unknown)`,
      );
    }
    if (op.returnMs !== undefined && op.returnMs < op.callMs) {
      throw new Error(`${at}: returnMs ${op.returnMs} is before callMs ${op.callMs}`);
    }
    const wantsValue = op.input.op === 'read';
    const o = op.output as { value?: unknown; ok?: unknown } | undefined;
    const fits = wantsValue ? o?.value === null || typeof o?.value === 'string' : typeof o?.ok === 'boolean';
    if (o !== undefined && !fits) {
      throw new Error(`${at}: a ${op.input.op} must output ${wantsValue ? '{ value }' : '{ ok }'}`);
    }
  }
  // A client that gave up on an op (unknown outcome) may go on: that op may still take effect later,
  // as its +Infinity return models, but it no longer occupies the client. Only completed ops do.
  // At an equal call time the unknown op sorts first, then the shorter one.
  const sorted = [...history].sort(
    (a, b) =>
      a.client - b.client || a.callMs - b.callMs || compare(a.returnMs ?? -Infinity, b.returnMs ?? -Infinity),
  );
  let busy: HistoryOp | undefined;
  for (const op of sorted) {
    if (busy?.client !== op.client) busy = undefined;
    if (busy !== undefined && op.callMs < busy.returnMs!) {
      throw new Error(`client ${op.client}: ops ${busy.id} and ${op.id} overlap (at most one op in flight)`);
    }
    if (op.returnMs !== undefined) busy = op;
  }
}

/** a - b as a sort order, but equal for Infinity and Infinity (where a - b is NaN). */
function compare(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// Register states, interned per key: ABSENT (null); UNCOMPARED for every value that no read returned
// and no cas expected (they behave alike, so they are one state to the cache); 2.. the other values.
const ABSENT = 0;
const UNCOMPARED = 1;
const ILLEGAL = -1;
// What an op does to the register, compiled from its input and output.
const READ = 0; // legal iff state === a
const SET = 1; // state := a (write, delete, and their unknown outcomes)
const CAS_OK = 2; // legal iff state === a; state := b
const CAS_FAILED = 3; // legal iff state !== a
const CAS_MAYBE = 4; // unknown outcome: state := (state === a ? b : state)

interface ModelOp {
  op: HistoryOp;
  kind: number;
  a: number;
  b: number;
  /** +Infinity for an unknown outcome: it need never take effect. */
  returnMs: number;
}

function apply(m: ModelOp, state: number): number {
  if (m.kind === READ) return state === m.a ? state : ILLEGAL;
  if (m.kind === SET) return m.a;
  if (m.kind === CAS_OK) return state === m.a ? m.b : ILLEGAL;
  if (m.kind === CAS_FAILED) return state !== m.a ? state : ILLEGAL;
  return state === m.a ? m.b : state;
}

/** Compiles a key's ops, leaving out those that constrain nothing: unknown reads, and writes and
 * deletes that answered ok:false (a definite failure: they did not take effect). */
function compile(history: readonly HistoryOp[], names: (string | null)[]): ModelOp[] {
  const compared = new Set<string | null>();
  for (const { input, output } of history) {
    if (input.op === 'cas') compared.add(input.expect);
    if (output !== undefined && 'value' in output) compared.add(output.value);
  }
  const ids = new Map<string, number>();
  const intern = (v: string | null): number => {
    if (v === null) return ABSENT;
    if (!compared.has(v)) return UNCOMPARED;
    if (!ids.has(v)) ids.set(v, names.push(v) - 1);
    return ids.get(v)!;
  };
  const ops: ModelOp[] = [];
  for (const op of history) {
    const { input, output } = op;
    const returnMs = op.returnMs ?? Infinity;
    const ok = output !== undefined && 'ok' in output ? output.ok : undefined;
    if (input.op === 'read') {
      if (output !== undefined && 'value' in output) {
        ops.push({ op, kind: READ, a: intern(output.value), b: 0, returnMs });
      }
    } else if (input.op !== 'cas') {
      const a = input.op === 'write' ? intern(input.value) : ABSENT;
      if (ok !== false) ops.push({ op, kind: SET, a, b: 0, returnMs });
    } else {
      const kind = ok === undefined ? CAS_MAYBE : ok ? CAS_OK : CAS_FAILED;
      ops.push({ op, kind, a: intern(input.expect), b: intern(input.value), returnMs });
    }
  }
  return ops;
}

function checkKey(key: string, history: HistoryOp[], stepsMax: number): LinearizabilityResult {
  const names: (string | null)[] = [null, null];
  const ops = compile(history, names);
  const opCount = ops.length;
  // Entry 2i is op i's call and 2i + 1 its return; HEAD is the sentinel before the first entry.
  const HEAD = 2 * opCount;
  const END = -1;
  const timeOf = (e: number): number => ((e & 1) === 0 ? ops[e >> 1]!.op.callMs : ops[e >> 1]!.returnMs);
  const order = Array.from({ length: HEAD }, (_, e) => e);
  order.sort((x, y) => compare(timeOf(x), timeOf(y)) || (x & 1) - (y & 1) || x - y); // calls first
  const next = new Int32Array(HEAD + 1);
  const prev = new Int32Array(HEAD + 1);
  let last = HEAD;
  for (const e of order) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  next[last] = END;
  // A call always has its return after it, so only a return can be last. Unlift undoes lift.
  const lift = (call: number): void => {
    next[prev[call]!] = next[call]!;
    prev[next[call]!] = prev[call]!;
    next[prev[call + 1]!] = next[call + 1]!;
    if (next[call + 1] !== END) prev[next[call + 1]!] = prev[call + 1]!;
  };
  const unlift = (call: number): void => {
    next[prev[call + 1]!] = call + 1;
    if (next[call + 1] !== END) prev[next[call + 1]!] = call + 1;
    next[prev[call]!] = call;
    prev[next[call]!] = call;
  };

  // Classes of unknown ops with the same effect, and each one's rank in its class by call time.
  const classOf = new Int32Array(opCount).fill(-1);
  const rankOf = new Int32Array(opCount);
  const classIds = new Map<string, number>();
  const classSizes: number[] = [];
  for (const e of order) {
    const m = ops[e >> 1]!;
    if ((e & 1) === 1 || m.returnMs !== Infinity) continue;
    const effect = `${m.kind},${m.a},${m.b}`;
    if (!classIds.has(effect)) classIds.set(effect, classSizes.push(0) - 1);
    classOf[e >> 1] = classIds.get(effect)!;
    rankOf[e >> 1] = classSizes[classOf[e >> 1]!]!++;
  }
  const classUsed = new Int32Array(classSizes.length);

  // The cache key: the state, then the bitset of completed ops linearized, 16 bits per UTF-16 unit.
  const linearized = new Uint16Array(Math.ceil(opCount / 16));
  const cacheKey = (state: number): string => {
    let s = String.fromCharCode(state & 0xffff, state >>> 16);
    for (let w = 0; w < linearized.length; w += 4096) {
      s += String.fromCharCode(...linearized.subarray(w, w + 4096));
    }
    return s;
  };
  type Visit = { used: Int32Array; done: boolean };
  const visits = new Map<string, Visit[]>();
  // Only a finished visit has failed. An unfinished one with the same key is an ancestor, which
  // has fewer ops linearized, so it never has equal counts: it cannot cover the current state.
  const covered = (seen: Visit[]): boolean =>
    seen.some((v) => v.done && v.used.every((n, c) => n <= classUsed[c]!));
  let requiredLeft = ops.filter((m) => m.returnMs !== Infinity).length;
  const mark = (i: number, by: 1 | -1): void => {
    if (classOf[i] !== -1) {
      classUsed[classOf[i]!]! += by;
    } else {
      linearized[i >> 4]! ^= 1 << (i & 15);
      requiredLeft -= by;
    }
  };
  const stack: { call: number; state: number; visit: Visit }[] = [];
  let state = ABSENT;
  // The deepest prefix, snapshotted at its first backtrack with the op whose return stopped it.
  let best = { prefix: [] as number[], state, blocker: undefined as HistoryOp | undefined };
  let bestPending = true;

  // Each node first tries the completed ops, then (a second pass) the unknown ones.
  let tryingUnknowns = false;
  let entry = next[HEAD]!;
  for (let steps = 0; requiredLeft > 0; steps++) {
    if (steps >= stepsMax) {
      const message = `key ${JSON.stringify(key)}: gave up after ${stepsMax} search steps over ${history.length} ops`;
      return { verdict: 'unknown', key, ops: history.length, message };
    }
    if (entry === END) throw new Error('linearizability: invariant broken: walked past the last return');
    const i = entry >> 1;
    const c = classOf[i]!;
    if ((entry & 1) === 0) {
      const tryable = (c !== -1) === tryingUnknowns && (c === -1 || rankOf[i] === classUsed[c]);
      const after = tryable ? apply(ops[i]!, state) : ILLEGAL;
      if (after !== ILLEGAL && !(c !== -1 && after === state)) {
        mark(i, 1);
        const k = cacheKey(after);
        const seen = visits.get(k) ?? visits.set(k, []).get(k)!;
        if (!covered(seen)) {
          const visit = { used: classUsed.slice(), done: false };
          seen.push(visit);
          stack.push({ call: entry, state, visit });
          if (stack.length > best.prefix.length) bestPending = true;
          state = after;
          lift(entry);
          [entry, tryingUnknowns] = [next[HEAD]!, false];
          continue;
        }
        mark(i, -1);
      }
      entry = next[entry]!;
      continue;
    }
    // A return: its op had to be linearized by now. Once the unknown ops were tried too, backtrack.
    if (!tryingUnknowns && classSizes.length > 0) {
      [entry, tryingUnknowns] = [next[HEAD]!, true];
      continue;
    }
    if (bestPending) {
      best = { prefix: stack.map((s) => ops[s.call >> 1]!.op.id), state, blocker: ops[i]!.op };
      bestPending = false;
    }
    const top = stack.pop();
    if (top === undefined) {
      const message = `key ${JSON.stringify(key)} is not linearizable: ${describeStuck(best, names, opCount)}`;
      return { verdict: 'violation', key, ops: history, longestPrefix: best.prefix, message };
    }
    top.visit.done = true;
    state = top.state;
    mark(top.call >> 1, -1);
    unlift(top.call);
    [entry, tryingUnknowns] = [next[top.call]!, classOf[top.call >> 1] !== -1];
  }
  return { verdict: 'ok', keys: 1, ops: history.length };
}

function describeStuck(
  best: { prefix: number[]; state: number; blocker: HistoryOp | undefined },
  names: (string | null)[],
  opCount: number,
): string {
  const held = best.state === UNCOMPARED ? 'a value no op reads' : JSON.stringify(names[best.state]);
  const head = `the longest linearized prefix has ${best.prefix.length} of ${opCount} ops and leaves ${held}`;
  const b = best.blocker;
  if (b === undefined) return head;
  return `${head}; then op ${b.id} (client ${b.client}, ${describeOp(b)}, ${b.callMs}..${b.returnMs} ms) cannot take effect`;
}

function describeOp({ input, output }: HistoryOp): string {
  const ok = output !== undefined && 'ok' in output ? (output.ok ? 'ok' : 'failed') : undefined;
  const out = output === undefined ? 'unknown' : 'value' in output ? JSON.stringify(output.value) : ok;
  if (input.op === 'read') return `read -> ${out}`;
  if (input.op === 'write') return `write ${JSON.stringify(input.value)} -> ${out}`;
  if (input.op === 'delete') return `delete -> ${out}`;
  return `cas ${JSON.stringify(input.expect)} => ${JSON.stringify(input.value)} -> ${out}`;
}
