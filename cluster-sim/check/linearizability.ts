// Linearizability checker for a key-value register history, in the style of Porcupine.
//
// A history is linearizable if each op can be given one instant between its call and its return,
// such that replaying the ops in that order against a register gives the outputs that were observed
// (Herlihy & Wing 1990). Finding that order is NP-complete in general, so we search, as follows:
//
// - P-compositionality (Horn & Kroening 2015): keys are independent registers, and a history is
//   linearizable iff each key's sub-history is. Partitioning by key turns one search over n ops into
//   several small ones, which is what makes realistic histories cheap.
// - Wing & Gong (1993): put every op's call and return on one list sorted by time. Walking from the
//   head, any call met before the first return may be linearized next (it is minimal: no pending op
//   returned before it was called). Linearizing "lifts" both its entries out of the list and the walk
//   restarts at the head. Meeting a return means that op had to be linearized already: backtrack,
//   undo the last choice and try the next call after it. An empty stack at a return is a proof that no
//   order exists.
// - Lowe (2017): memoise each (set of linearized ops, register state) reached; reaching one again
//   explores the same subtree, so it is skipped. This prunes the search from factorial to roughly
//   exponential in the number of ops in flight at once, which a workload keeps small.
// - Porcupine (Anish Athalye, github.com/anishathalye/porcupine): the doubly linked list with
//   lift/unlift, the bitset-plus-state cache, and giving unknown outcomes a return time of +Infinity
//   (as Knossos does): such an op may take effect at any point after its call, and placing it after
//   every completed op is the same as it never taking effect.
//
// Unknown outcomes are what make a refutation expensive: each one left open doubles the sets of
// linearized ops to visit. So before searching we narrow them, keeping the same verdicts (see
// narrowUnknowns; the brute-force property test checks the equivalence).
//
// Time is compared conservatively: a return precedes a call only if strictly earlier, so at equal
// times calls sort before returns (the ops are then concurrent and either order is tried).
//
// Pure: no I/O, no clock, no randomness. The step budget bounds the search; exceeding it is 'unknown'.

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

// A step is one entry visited. A linearizable key costs about one step per entry plus a little
// backtracking, so a million covers keys of ~100k ops, while an unprovable one gives up in ~1 s.
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
  // A violation is a proof and outranks an 'unknown' elsewhere, so every key is checked.
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
  const byClient = new Map<number, HistoryOp[]>();
  for (const op of history) {
    const at = `history op ${op.id}`;
    if (ids.has(op.id)) throw new Error(`${at}: duplicate id (ids must be unique per history)`);
    ids.add(op.id);
    if (!Number.isFinite(op.callMs)) throw new Error(`${at}: callMs must be a finite number`);
    if (op.output !== undefined && op.returnMs === undefined) {
      throw new Error(`${at}: has an output but no returnMs (an op that answered has returned)`);
    }
    if (op.output === undefined && op.returnMs !== undefined) {
      throw new Error(`${at}: has a returnMs but no output (an unknown outcome has no return time)`);
    }
    if (op.returnMs !== undefined && !(op.returnMs >= op.callMs)) {
      throw new Error(`${at}: returnMs ${op.returnMs} is before callMs ${op.callMs}`);
    }
    if (op.output !== undefined) {
      const wantsValue = op.input.op === 'read';
      const o = op.output as { value?: unknown; ok?: unknown };
      const fits = wantsValue ? o.value === null || typeof o.value === 'string' : typeof o.ok === 'boolean';
      if (!fits)
        throw new Error(`${at}: a ${op.input.op} must output ${wantsValue ? '{ value }' : '{ ok }'}`);
    }
    const mine = byClient.get(op.client);
    if (mine === undefined) byClient.set(op.client, [op]);
    else mine.push(op);
  }
  // A client that gave up on an op (unknown outcome) may go on: the op is abandoned, not in flight,
  // though it may still take effect later, which its +Infinity return models. So only completed ops
  // occupy their client. At an equal call time, abandoned and zero-length ops sort first.
  for (const [client, ops] of byClient) {
    ops.sort(
      (a, b) => a.callMs - b.callMs || compareNumbers(a.returnMs ?? -Infinity, b.returnMs ?? -Infinity),
    );
    let busy: HistoryOp | undefined;
    for (const op of ops) {
      if (busy !== undefined && op.callMs < busy.returnMs!) {
        throw new Error(
          `client ${client}: ops ${busy.id} and ${op.id} overlap (a client has at most one op in flight)`,
        );
      }
      if (op.returnMs !== undefined) busy = op;
    }
  }
}

/** Like a - b, but Infinity equals Infinity (unknown outcomes all return at +Infinity). */
function compareNumbers(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// Register states are interned per key: 0 is absent (null), 1 stands for every value that no op
// compares the register with (those behave alike, so merging them lets the cache merge states), and
// 2.. are the values some read returned or some cas expected.
const ABSENT = 0;
const UNCOMPARED = 1;
const ILLEGAL = -1;
// What an op does to the register, compiled from input and output.
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
  /** When it must have taken effect by: +Infinity for an unknown outcome, which may never. */
  returnMs: number;
}

function apply(m: ModelOp, state: number): number {
  switch (m.kind) {
    case READ:
      return state === m.a ? state : ILLEGAL;
    case SET:
      return m.a;
    case CAS_OK:
      return state === m.a ? m.b : ILLEGAL;
    case CAS_FAILED:
      return state !== m.a ? state : ILLEGAL;
    default:
      return state === m.a ? m.b : state;
  }
}

/** Compiles a key's ops for the search, leaving out those that constrain nothing: unknown reads, and
 * writes/deletes that answered ok:false (a definite failure: they did not take effect). */
function compile(history: readonly HistoryOp[], names: (string | null)[]): ModelOp[] {
  const compared = new Set<string | null>();
  for (const { input, output } of history) {
    if (input.op === 'cas') compared.add(input.expect);
    else if (input.op === 'read' && output !== undefined && 'value' in output) compared.add(output.value);
  }
  const ids = new Map<string, number>();
  const intern = (v: string | null): number => {
    if (v === null) return ABSENT;
    if (!compared.has(v)) return UNCOMPARED;
    let id = ids.get(v);
    if (id === undefined) {
      id = names.push(v) - 1;
      ids.set(v, id);
    }
    return id;
  };
  const ops: ModelOp[] = [];
  for (const op of history) {
    const { input, output } = op;
    const returnMs = op.returnMs ?? Infinity;
    const ok = output !== undefined && 'ok' in output ? output.ok : undefined;
    if (input.op === 'read') {
      if (output !== undefined && 'value' in output)
        ops.push({ op, kind: READ, a: intern(output.value), b: 0, returnMs });
    } else if (input.op === 'write' || input.op === 'delete') {
      if (ok !== false)
        ops.push({ op, kind: SET, a: input.op === 'write' ? intern(input.value) : ABSENT, b: 0, returnMs });
    } else {
      const kind = ok === undefined ? CAS_MAYBE : ok ? CAS_OK : CAS_FAILED;
      ops.push({ op, kind, a: intern(input.expect), b: intern(input.value), returnMs });
    }
  }
  return narrowUnknowns(ops);
}

/** Narrows the unknown outcomes (return +Infinity), each of which would set the register to some v:
 * - If it is the only op that can produce v (values are unique per write in a generated workload),
 *   and a completed op needed the register to hold v (a read of v, a swap from v), then it took
 *   effect, before the first such op returned: that becomes its return time.
 * - If no op compares the register with v, and no failed cas (which any other value satisfies) returns
 *   after its call, then taking effect only hurts the ops that follow until v is overwritten: it is
 *   left out, as if it never took effect. So is a cas from a value that nothing can produce.
 * Both keep the set of linearizable histories the same. */
function narrowUnknowns(ops: ModelOp[]): ModelOp[] {
  const producers = new Map<number, number>(); // value -> how many ops can set it
  const neededByMs = new Map<number, number>(); // value -> first return of a completed op needing it
  const comparedIds = new Set<number>();
  let lastFailedCasMs = -Infinity;
  for (const m of ops) {
    const sets = m.kind === SET ? m.a : m.kind === CAS_OK || m.kind === CAS_MAYBE ? m.b : undefined;
    if (sets !== undefined) producers.set(sets, (producers.get(sets) ?? 0) + 1);
    if (m.kind !== SET) comparedIds.add(m.a);
    if (m.kind === CAS_FAILED) lastFailedCasMs = Math.max(lastFailedCasMs, m.returnMs);
    if (m.kind === READ || m.kind === CAS_OK)
      neededByMs.set(m.a, Math.min(neededByMs.get(m.a) ?? Infinity, m.returnMs));
  }
  return ops.flatMap((m) => {
    if (m.returnMs !== Infinity) return [m];
    if (m.kind === CAS_MAYBE && m.a !== ABSENT && !producers.has(m.a)) return [];
    const v = m.kind === SET ? m.a : m.b;
    const neededMs = neededByMs.get(v);
    // Not before its call: a needing op that returned earlier still sorts first and is refuted.
    if (v !== ABSENT && v !== UNCOMPARED && neededMs !== undefined && producers.get(v) === 1) {
      return [{ ...m, returnMs: Math.max(neededMs, m.op.callMs) }];
    }
    return comparedIds.has(v) || lastFailedCasMs >= m.op.callMs ? [m] : [];
  });
}

function checkKey(key: string, history: HistoryOp[], stepsMax: number): LinearizabilityResult {
  const names: (string | null)[] = [null, null];
  const ops = compile(history, names);
  const opCount = ops.length;
  // Entries 0..2n-1: entry 2i is op i's call, 2i+1 its return. HEAD is the list's sentinel.
  const entryCount = 2 * opCount;
  const HEAD = entryCount;
  const END = -1;
  const timeOf = (e: number): number => {
    const m = ops[e >> 1]!;
    return (e & 1) === 0 ? m.op.callMs : m.returnMs;
  };
  // By time; at equal time calls first (the conservative rule); then by index, for a stable order.
  const order = Array.from({ length: entryCount }, (_, e) => e).sort(
    (x, y) => compareNumbers(timeOf(x), timeOf(y)) || (x & 1) - (y & 1) || x - y,
  );
  const next = new Int32Array(entryCount + 1);
  const prev = new Int32Array(entryCount + 1);
  let last = HEAD;
  for (const e of order) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  next[last] = END;
  // Unknown outcomes with the same effect are interchangeable, and the one called first can go
  // wherever a later one can: only the first not yet linearized of each class is tried. Without this,
  // k alike ops give 2^k cache entries instead of k + 1.
  const classOf = new Int32Array(opCount).fill(-1);
  const rankOf = new Int32Array(opCount);
  const classes = new Map<string, number>();
  const classSizes: number[] = [];
  for (const e of order) {
    const m = ops[e >> 1]!;
    if ((e & 1) === 1 || m.returnMs !== Infinity) continue;
    const effect = `${m.kind},${m.a},${m.b}`;
    const c = classes.get(effect) ?? classes.set(effect, classSizes.push(0) - 1).get(effect)!;
    classOf[e >> 1] = c;
    rankOf[e >> 1] = classSizes[c]!++;
  }
  const classUsed = new Int32Array(classSizes.length);

  // Lifting an op removes its call and its return; unlifting in reverse order restores both.
  const lift = (call: number): void => {
    next[prev[call]!] = next[call]!;
    prev[next[call]!] = prev[call]!; // a call always has its return after it, so next is not END
    const ret = call + 1;
    next[prev[ret]!] = next[ret]!;
    if (next[ret] !== END) prev[next[ret]!] = prev[ret]!;
  };
  const unlift = (call: number): void => {
    const ret = call + 1;
    next[prev[ret]!] = ret;
    if (next[ret] !== END) prev[next[ret]!] = ret;
    next[prev[call]!] = call;
    prev[next[call]!] = call;
  };

  const linearized = new Uint16Array(Math.ceil(opCount / 16));
  const flip = (i: number): void => {
    linearized[i >> 4]! ^= 1 << (i & 15);
  };
  // The cache key packs the bitset 16 bits per UTF-16 code unit: compact, and Set hashes it for us.
  const cacheKey = (state: number): string => {
    let s = String.fromCharCode(state & 0xffff, state >>> 16);
    for (let w = 0; w < linearized.length; w += 4096)
      s += String.fromCharCode(...linearized.subarray(w, w + 4096));
    return s;
  };
  const seen = new Set<string>();
  const stackCall = new Int32Array(opCount);
  const stackState = new Int32Array(opCount);
  let depth = 0;
  let state = ABSENT;
  // Unknown outcomes never have to take effect, so the search is done once every other op is placed.
  let requiredLeft = ops.filter((m) => m.returnMs !== Infinity).length;
  // The deepest prefix, snapshotted lazily at its first backtrack, with the op whose return stopped it.
  let bestDepth = 0;
  let bestPending = true;
  let best = { prefix: [] as number[], state: ABSENT, blocker: undefined as ModelOp | undefined };

  // Placing an unknown outcome where nothing sees its effect is the same as never placing it (which
  // stays possible), but would fill the cache with states that differ only in it: so it is not done.
  // That is when it changes nothing, or when the op placed right after it overwrites the register.
  const pointless = (m: ModelOp, after: number): boolean =>
    (m.returnMs === Infinity && after === state) ||
    (m.kind === SET && depth > 0 && ops[stackCall[depth - 1]! >> 1]!.returnMs === Infinity);

  let entry = next[HEAD]!;
  for (let steps = 0; requiredLeft > 0; steps++) {
    if (steps >= stepsMax) {
      const message = `key ${JSON.stringify(key)}: gave up after ${stepsMax} search steps over ${history.length} ops`;
      return { verdict: 'unknown', key, ops: history.length, message };
    }
    if (entry === END) throw new Error('linearizability: invariant broken: walked off the entry list');
    const m = ops[entry >> 1]!;
    if ((entry & 1) === 0) {
      const c = classOf[entry >> 1]!;
      const after = c === -1 || rankOf[entry >> 1] === classUsed[c] ? apply(m, state) : ILLEGAL;
      if (after !== ILLEGAL && !pointless(m, after)) {
        flip(entry >> 1);
        const k = cacheKey(after);
        if (!seen.has(k)) {
          seen.add(k);
          stackCall[depth] = entry;
          stackState[depth] = state;
          depth++;
          state = after;
          lift(entry);
          if (m.returnMs !== Infinity) requiredLeft--;
          else classUsed[c]!++;
          if (depth > bestDepth) {
            bestDepth = depth;
            bestPending = true;
          }
          entry = next[HEAD]!;
          continue;
        }
        flip(entry >> 1);
      }
      entry = next[entry]!;
      continue;
    }
    // A return: its op had to be linearized by now, and this prefix did not allow it.
    if (bestPending) {
      const prefix = Array.from(stackCall.subarray(0, depth), (c) => ops[c >> 1]!.op.id);
      best = { prefix, state, blocker: m };
      bestPending = false;
    }
    if (depth === 0) return violation(key, history, best.prefix, describeStuck(best, names, opCount));
    depth--;
    const call = stackCall[depth]!;
    state = stackState[depth]!;
    flip(call >> 1);
    unlift(call);
    if (ops[call >> 1]!.returnMs !== Infinity) requiredLeft++;
    else classUsed[classOf[call >> 1]!]!--;
    entry = next[call]!;
  }
  return { verdict: 'ok', keys: 1, ops: history.length };
}

function violation(
  key: string,
  ops: HistoryOp[],
  longestPrefix: number[],
  why: string,
): LinearizabilityResult {
  const message = `key ${JSON.stringify(key)} is not linearizable: ${why}`;
  return { verdict: 'violation', key, ops, longestPrefix, message };
}

function describeStuck(
  best: { prefix: number[]; state: number; blocker: ModelOp | undefined },
  names: (string | null)[],
  opCount: number,
): string {
  const held = best.state === UNCOMPARED ? 'a value no op reads' : JSON.stringify(names[best.state]);
  const head = `the longest linearized prefix has ${best.prefix.length} of ${opCount} ops and leaves ${held}`;
  const b = best.blocker?.op;
  if (b === undefined) return head;
  return `${head}; then op ${b.id} (client ${b.client}, ${describeOp(b)}, ${b.callMs}..${b.returnMs} ms) cannot take effect`;
}

function describeOp(op: HistoryOp): string {
  const { input, output } = op;
  const out =
    output === undefined
      ? 'unknown'
      : 'value' in output
        ? JSON.stringify(output.value)
        : output.ok
          ? 'ok'
          : 'failed';
  if (input.op === 'read') return `read -> ${out}`;
  if (input.op === 'write') return `write ${JSON.stringify(input.value)} -> ${out}`;
  if (input.op === 'delete') return `delete -> ${out}`;
  return `cas ${JSON.stringify(input.expect)} => ${JSON.stringify(input.value)} -> ${out}`;
}
