// The linearizability checker: hand-written histories whose verdict a reader can check by eye, then
// properties over histories generated from a reference register (legal by construction, and the
// same with one read corrupted), then input validation and a size the simulator will produce.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  checkLinearizable,
  type HistoryOp,
  type KvInput,
  type KvOutput,
} from '../../../cluster-sim/check/linearizability.js';

// --- hand-written histories -------------------------------------------------------------------

let nextId = 1;
/** One op; `at` is [callMs, returnMs], or [callMs] for an unknown outcome. */
function op(client: number, input: KvInput, output: KvOutput | undefined, at: [number, number?]): HistoryOp {
  return { id: nextId++, client, input, output, callMs: at[0], returnMs: at[1] };
}
const write = (c: number, value: string, at: [number, number?], key = 'x') =>
  op(c, { op: 'write', key, value }, at.length === 2 ? { ok: true } : undefined, at);
const read = (c: number, value: string | null, at: [number, number], key = 'x') =>
  op(c, { op: 'read', key }, { value }, at);
const del = (c: number, at: [number, number], key = 'x') => op(c, { op: 'delete', key }, { ok: true }, at);
const cas = (
  c: number,
  expect: string | null,
  value: string,
  ok: boolean | undefined,
  at: [number, number?],
) => op(c, { op: 'cas', key: 'x', expect, value }, ok === undefined ? undefined : { ok }, at);

const verdict = (h: HistoryOp[]) => checkLinearizable(h).verdict;

describe('checkLinearizable: hand-written histories', () => {
  it('an empty history is linearizable', () => {
    assert.deepEqual(checkLinearizable([]), { verdict: 'ok', keys: 0, ops: 0 });
  });

  it('a legal sequential history: write, read, delete, cas on absent, failed cas', () => {
    const h = [
      read(1, null, [0, 1]),
      write(1, 'a', [2, 3]),
      read(2, 'a', [4, 5]),
      del(1, [6, 7]),
      read(2, null, [8, 9]),
      cas(1, null, 'b', true, [10, 11]),
      cas(2, 'a', 'c', false, [12, 13]),
      read(1, 'b', [14, 15]),
    ];
    assert.deepEqual(checkLinearizable(h), { verdict: 'ok', keys: 1, ops: 8 });
  });

  it('an illegal sequential history: a read misses the write that returned before it', () => {
    const w = write(1, 'a', [0, 1]);
    const r = read(2, null, [2, 3]);
    const result = checkLinearizable([w, r]);
    assert.equal(result.verdict, 'violation');
    assert.ok(result.verdict === 'violation');
    assert.equal(result.key, 'x');
    assert.deepEqual(result.longestPrefix, [w.id]);
    assert.deepEqual(result.ops, [w, r]);
    assert.match(result.message, new RegExp(`op ${r.id} .*read -> null`));
  });

  it('a read overlapping a write may see the value before or after it', () => {
    assert.equal(verdict([write(1, 'a', [0, 10]), read(2, null, [2, 5])]), 'ok');
    assert.equal(verdict([write(1, 'a', [0, 10]), read(2, 'a', [2, 5])]), 'ok');
    // Two overlapping writes: a later read may find either one last.
    assert.equal(verdict([write(1, 'a', [0, 10]), write(2, 'b', [1, 9]), read(3, 'a', [11, 12])]), 'ok');
    assert.equal(verdict([write(1, 'a', [0, 10]), write(2, 'b', [1, 9]), read(3, 'b', [11, 12])]), 'ok');
  });

  it('equal times do not order ops: only a strictly earlier return precedes a call', () => {
    assert.equal(verdict([write(1, 'a', [0, 5]), read(2, null, [5, 6])]), 'ok');
    assert.equal(verdict([write(1, 'a', [0, 5]), read(2, null, [6, 7])]), 'violation');
  });

  it('a stale read after a completed overwrite is a violation', () => {
    const h = [write(1, 'a', [0, 1]), write(1, 'b', [2, 3]), read(2, 'a', [4, 5])];
    assert.equal(verdict(h), 'violation');
  });

  it('once a read saw the new value, a later read may not see the old one', () => {
    const h = [write(1, 'a', [0, 1]), write(1, 'b', [2, 20]), read(2, 'b', [3, 4]), read(3, 'a', [5, 6])];
    assert.equal(verdict(h), 'violation');
  });

  it('a cas that swapped on a value that could not have been current is a violation', () => {
    const h = [write(1, 'a', [0, 1]), write(1, 'b', [2, 3]), cas(2, 'a', 'c', true, [4, 5])];
    assert.equal(verdict(h), 'violation');
    // And one that failed when its expectation held is too.
    assert.equal(verdict([write(1, 'a', [0, 1]), cas(2, 'a', 'c', false, [2, 3])]), 'violation');
    // While it overlaps the overwrite, either order is possible.
    assert.equal(
      verdict([write(1, 'a', [0, 1]), write(1, 'b', [2, 6]), cas(2, 'a', 'c', true, [4, 5])]),
      'ok',
    );
  });

  it('an unknown write may or may not have happened, and stays possible after it timed out', () => {
    const base = () => [write(1, 'a', [0, 1]), write(2, 'b', [2])];
    assert.equal(verdict([...base(), read(3, 'a', [5, 6])]), 'ok');
    assert.equal(verdict([...base(), read(3, 'b', [5, 6])]), 'ok');
    assert.equal(verdict([...base(), read(3, 'a', [5, 6]), read(3, 'b', [100, 101])]), 'ok');
    // Once it has taken effect it cannot be undone.
    assert.equal(verdict([...base(), read(3, 'b', [5, 6]), read(3, 'a', [7, 8])]), 'violation');
  });

  it('an unknown write read before its call is a violation', () => {
    assert.equal(verdict([read(1, 'b', [2, 5]), write(2, 'b', [10])]), 'violation');
  });

  it('refutes a stale read among many unknown writes without running out of steps', () => {
    // Each unknown write may or may not have happened: 2^20 combinations for a naive search.
    const unknowns = Array.from({ length: 20 }, (_, i) => write(10 + i, `u${i}`, [2 + i]));
    const h = [write(1, 'a', [0, 1]), ...unknowns, read(2, 'a', [30, 31]), write(3, 'b', [40, 41])];
    assert.equal(verdict(h), 'ok');
    const result = checkLinearizable([...h, read(2, 'a', [50, 51])]);
    assert.ok(result.verdict === 'violation', result.verdict === 'unknown' ? result.message : result.verdict);
    assert.match(result.message, /read -> "a", 50\.\.51 ms\) cannot take effect/);
  });

  it('an unknown cas may have swapped or not; an unknown read constrains nothing', () => {
    const base = () => [write(1, 'a', [0, 1]), cas(2, 'a', 'b', undefined, [2])];
    assert.equal(verdict([...base(), read(3, 'a', [5, 6])]), 'ok');
    assert.equal(verdict([...base(), read(3, 'b', [5, 6])]), 'ok');
    // It could only swap from 'a'.
    assert.equal(
      verdict([write(1, 'c', [0, 1]), cas(2, 'a', 'b', undefined, [2]), read(3, 'b', [5, 6])]),
      'violation',
    );
    const unknownRead = op(2, { op: 'read', key: 'x' }, undefined, [0]);
    assert.deepEqual(checkLinearizable([unknownRead, write(1, 'a', [1, 2])]), {
      verdict: 'ok',
      keys: 1,
      ops: 2,
    });
  });

  it('a write or delete that answered ok:false did not take effect', () => {
    const failed = op(1, { op: 'write', key: 'x', value: 'a' }, { ok: false }, [0, 1]);
    assert.equal(verdict([failed, read(2, null, [2, 3])]), 'ok');
    assert.equal(verdict([failed, read(2, 'a', [2, 3])]), 'violation');
  });

  it('keys are independent registers, and a violation names its key', () => {
    const legal = [write(1, 'a', [0, 1], 'x'), read(2, null, [2, 3], 'y'), read(2, 'a', [4, 5], 'x')];
    assert.deepEqual(checkLinearizable(legal), { verdict: 'ok', keys: 2, ops: 3 });
    const wrongKey = read(2, 'a', [2, 3], 'y');
    const result = checkLinearizable([write(1, 'a', [0, 1], 'x'), wrongKey]);
    assert.ok(result.verdict === 'violation');
    assert.equal(result.key, 'y');
    assert.deepEqual(result.ops, [wrongKey]);
  });

  it('gives up with "unknown" when the step budget runs out, and a violation elsewhere still wins', () => {
    // A legal key that needs a step per op, and an illegal one refuted in 4 steps.
    const long = Array.from({ length: 10 }, (_, i) => write(1, `a${i}`, [2 * i, 2 * i + 1]));
    const result = checkLinearizable(long, { stepsMaxPerKey: 5 });
    assert.ok(result.verdict === 'unknown', result.verdict);
    assert.equal(result.key, 'x');
    assert.equal(result.ops, 10);
    const bad = [...long, write(2, 'c', [0, 1], 'y'), read(3, null, [2, 3], 'y')];
    assert.equal(checkLinearizable(bad, { stepsMaxPerKey: 5 }).verdict, 'violation');
  });
});

// --- generated histories ---------------------------------------------------------------------

interface StepSpec {
  clientPick: number;
  keyPick: number;
  kind: 'read' | 'write' | 'delete' | 'cas';
  expectPick: number;
  gapMs: number; // from the previous op's linearization point to this one's
  callLeadMs: number; // how long before its linearization point the op was called
  returnLagMs: number; // how long after it, it returned (or its client gave up)
  unknown: boolean; // the outcome is lost
  applied: boolean; // for a lost outcome: whether it took effect
}

/** Runs the steps in order against a reference register, each taking effect at its own instant
 * `tMs`, and wraps each in an interval around that instant, one op in flight per client.
 * Legal by construction. Values are unique per write unless `valueCount` makes them repeat. */
function buildLegalHistory(
  steps: readonly StepSpec[],
  clientCount: number,
  keyCount: number,
  valueCount = Infinity,
): HistoryOp[] {
  const register = new Map<string, string | null>();
  const written = new Map<string, string[]>();
  const freeAtMs: number[] = new Array(clientCount).fill(0);
  const history: HistoryOp[] = [];
  let tMs = 0;
  steps.forEach((s, i) => {
    tMs = Math.max(tMs + 1 + s.gapMs, Math.min(...freeAtMs));
    const idle = freeAtMs.flatMap((free, c) => (free <= tMs ? [c] : []));
    const client = idle[s.clientPick % idle.length]!;
    const key = `k${s.keyPick % keyCount}`;
    const current = register.get(key) ?? null;
    const values = written.get(key) ?? [];
    const value = `v${i % valueCount}`;
    let input: KvInput;
    let output: KvOutput;
    let after = current;
    if (s.kind === 'read') {
      input = { op: 'read', key };
      output = { value: current };
    } else if (s.kind === 'write' || s.kind === 'delete') {
      input = s.kind === 'write' ? { op: 'write', key, value } : { op: 'delete', key };
      output = { ok: true };
      after = s.kind === 'write' ? value : null;
    } else {
      const expect =
        s.expectPick === 0 ? current : s.expectPick === 1 ? null : (values[s.expectPick] ?? current);
      input = { op: 'cas', key, expect, value };
      output = { ok: current === expect };
      if (current === expect) after = value;
    }
    if (!s.unknown || s.applied) register.set(key, after);
    if (input.op !== 'read' && input.op !== 'delete') written.set(key, [...values, value]);
    const callMs = Math.max(freeAtMs[client]!, tMs - s.callLeadMs);
    const returnMs = tMs + s.returnLagMs;
    freeAtMs[client] = returnMs;
    history.push(
      s.unknown
        ? { id: i, client, input, output: undefined, callMs, returnMs: undefined }
        : { id: i, client, input, output, callMs, returnMs },
    );
  });
  return history;
}

const stepArb = (unknownPercent: number): fc.Arbitrary<StepSpec> =>
  fc.record({
    clientPick: fc.nat(7),
    keyPick: fc.nat(3),
    kind: fc.constantFrom(
      'read' as const,
      'read' as const,
      'write' as const,
      'delete' as const,
      'cas' as const,
    ),
    expectPick: fc.nat(6),
    gapMs: fc.nat(3),
    callLeadMs: fc.nat(12),
    returnLagMs: fc.nat(12),
    // Unbiased: fast-check's bias toward edge values would make nearly every outcome unknown.
    unknown: fc.noBias(fc.nat(99)).map((x) => x < unknownPercent),
    applied: fc.boolean(),
  });

const historyArb = fc.record({
  clientCount: fc.integer({ min: 1, max: 5 }),
  keyCount: fc.integer({ min: 1, max: 3 }),
  steps: fc.array(stepArb(10), { minLength: 1, maxLength: 40, size: 'max' }),
});

/** The definition, by brute force over the whole history (keys not separated): is there an order
 * of the ops, consistent with real time, that a map of registers accepts? Unknown outcomes may be
 * placed anywhere after their call or left out; a write or delete that answered ok:false is left out.
 * Exponential: for histories of a handful of ops. */
function linearizableByBruteForce(history: readonly HistoryOp[]): boolean {
  const failed = (o: HistoryOp) =>
    o.input.op !== 'cas' && o.output !== undefined && 'ok' in o.output && !o.output.ok;
  const search = (left: readonly HistoryOp[], kv: ReadonlyMap<string, string | null>): boolean => {
    if (left.every((o) => o.output === undefined)) return true;
    return left.some((o) => {
      if (left.some((p) => p.returnMs !== undefined && p.returnMs < o.callMs)) return false;
      const rest = left.filter((p) => p !== o);
      if (o.output === undefined && search(rest, kv)) return true;
      const current = kv.get(o.input.key) ?? null;
      const next = new Map(kv);
      const out = o.output;
      switch (o.input.op) {
        case 'read':
          if (out !== undefined && 'value' in out && out.value !== current) return false;
          break;
        case 'write':
          next.set(o.input.key, o.input.value);
          break;
        case 'delete':
          next.set(o.input.key, null);
          break;
        case 'cas': {
          const swapped = current === o.input.expect;
          if (out !== undefined && 'ok' in out && out.ok !== swapped) return false;
          if (swapped) next.set(o.input.key, o.input.value);
        }
      }
      return search(rest, next);
    });
  };
  return search(
    history.filter((o) => !failed(o)),
    new Map(),
  );
}

describe('checkLinearizable: properties', () => {
  it('a history generated from a reference register is linearizable', () => {
    fc.assert(
      fc.property(historyArb, ({ clientCount, keyCount, steps }) => {
        const h = buildLegalHistory(steps, clientCount, keyCount);
        const result = checkLinearizable(h);
        assert.equal(result.verdict, 'ok', result.verdict === 'ok' ? '' : result.message);
      }),
      { numRuns: 300 },
    );
  });

  it('corrupting one read to a value never written makes it a violation on that key', () => {
    fc.assert(
      fc.property(historyArb, fc.nat(), ({ clientCount, keyCount, steps }, pick) => {
        const h = buildLegalHistory(steps, clientCount, keyCount);
        const seen = h.filter(
          (o) => o.output !== undefined && 'value' in o.output && o.output.value !== null,
        );
        fc.pre(seen.length > 0);
        const victim = seen[pick % seen.length]!;
        const corrupted = h.map((o) => (o === victim ? { ...o, output: { value: 'never-written' } } : o));
        const result = checkLinearizable(corrupted);
        assert.equal(result.verdict, 'violation');
        assert.ok(result.verdict === 'violation');
        assert.equal(result.key, victim.input.key);
        assert.ok(!result.longestPrefix.includes(victim.id));
      }),
      { numRuns: 300 },
    );
  });

  it('agrees with brute force on small histories with some outputs changed at random', () => {
    const smallArb = fc.record({
      clientCount: fc.integer({ min: 1, max: 4 }),
      valueCount: fc.constantFrom(Infinity, 2, 3),
      keyCount: fc.integer({ min: 1, max: 2 }),
      steps: fc.array(stepArb(15), { minLength: 1, maxLength: 7, size: 'max' }),
      changes: fc.array(fc.record({ at: fc.nat(), to: fc.constantFrom(null, 'v0', 'v1', 'v2', 'v3') })),
    });
    fc.assert(
      fc.property(smallArb, ({ clientCount, keyCount, valueCount, steps, changes }) => {
        const h = buildLegalHistory(steps, clientCount, keyCount, valueCount);
        for (const { at, to } of changes) {
          const o = h[at % h.length]!;
          if (o.output === undefined) continue;
          // A read now returns another value; a cas or write the opposite answer.
          o.output = 'value' in o.output ? { value: to } : { ok: !o.output.ok };
        }
        const result = checkLinearizable(h);
        assert.equal(result.verdict, linearizableByBruteForce(h) ? 'ok' : 'violation');
      }),
      { numRuns: 500 },
    );
  });
});

// --- validation -------------------------------------------------------------------------------

describe('checkLinearizable: malformed histories', () => {
  const w = (id: number, client: number, callMs: number, returnMs: number | undefined): HistoryOp => ({
    id,
    client,
    input: { op: 'write', key: 'x', value: `v${id}` },
    output: returnMs === undefined ? undefined : { ok: true },
    callMs,
    returnMs,
  });

  it('rejects a duplicate id', () => {
    assert.throws(() => checkLinearizable([w(1, 1, 0, 1), w(1, 2, 2, 3)]), /op 1: duplicate id/);
  });

  it('rejects a return before its call', () => {
    assert.throws(() => checkLinearizable([w(1, 1, 5, 4)]), /op 1: returnMs 4 is before callMs 5/);
    assert.throws(() => checkLinearizable([w(1, 1, 5, Infinity)]), /op 1: returnMs must be a finite number/);
  });

  it('rejects an output without a return time, and a return time without an output', () => {
    assert.throws(
      () => checkLinearizable([{ ...w(1, 1, 0, 1), returnMs: undefined }]),
      /output but no returnMs/,
    );
    assert.throws(
      () => checkLinearizable([{ ...w(1, 1, 0, 1), output: undefined }]),
      /returnMs but no output/,
    );
  });

  it('rejects an output of the wrong shape for its op', () => {
    assert.throws(
      () => checkLinearizable([{ ...w(1, 1, 0, 1), output: { value: 'a' } }]),
      /write must output/,
    );
  });

  it('rejects a client with two overlapping ops, but not one that moved on from a lost op', () => {
    assert.throws(() => checkLinearizable([w(1, 7, 0, 5), w(2, 7, 4, 6)]), /client 7: ops 1 and 2 overlap/);
    assert.equal(checkLinearizable([w(1, 7, 0, 5), w(2, 7, 5, 6)]).verdict, 'ok');
    assert.equal(checkLinearizable([w(1, 7, 0, undefined), w(2, 7, 5, 6)]).verdict, 'ok');
  });

  it('rejects a step budget that is not a positive integer', () => {
    assert.throws(() => checkLinearizable([], { stepsMaxPerKey: 0 }), /stepsMaxPerKey/);
  });
});

// --- size -------------------------------------------------------------------------------------

describe('checkLinearizable: size', () => {
  it('checks a legal 2,000-op history over 5 keys and 8 clients', { timeout: 20_000 }, () => {
    // A seeded generator (mulberry32), so the history is the same on every run.
    let seed = 0x5eed;
    const random = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const nat = (max: number) => Math.floor(random() * (max + 1));
    const kinds = ['read', 'read', 'write', 'delete', 'cas'] as const;
    const steps: StepSpec[] = Array.from({ length: 2000 }, () => ({
      clientPick: nat(7),
      keyPick: nat(4),
      kind: kinds[nat(4)]!,
      expectPick: nat(6),
      gapMs: nat(2),
      callLeadMs: nat(20),
      returnLagMs: nat(20),
      unknown: random() < 0.02,
      applied: random() < 0.5,
    }));
    const h = buildLegalHistory(steps, 8, 5);
    assert.deepEqual(checkLinearizable(h), { verdict: 'ok', keys: 5, ops: 2000 });
  });
});
