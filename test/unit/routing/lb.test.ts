// Load balancers, driven by hand: seeded randomness, time advanced explicitly.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRng } from '../../../src/core/rand.js';
import {
  type Balancer,
  createBalancer,
  effectiveWeight,
  LB_POLICIES,
  type LbEndpoint,
  RingHashBalancer,
  STATS_ENTRIES_MAX,
  STATS_IDLE_MS,
  statsEntriesCap,
} from '../../../src/core/routing/lb.js';

const eps = (...ids: string[]): LbEndpoint[] => ids.map((id) => ({ id }));
const weighted = (spec: Record<string, number>): LbEndpoint[] =>
  Object.entries(spec).map(([id, weight]) => ({ id, weight }));

function countPicks(
  b: Balancer,
  list: readonly LbEndpoint[],
  n: number,
  nowMs = 0,
  hashKey?: (i: number) => string,
) {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const ctx = hashKey === undefined ? { nowMs } : { nowMs, hashKey: hashKey(i) };
    const id = b.pick(list, ctx)?.id ?? 'none';
    counts[id] = (counts[id] ?? 0) + 1;
  }
  return counts;
}

describe('round_robin', () => {
  it('is nginx smooth weighted RR: {a:5,b:1,c:1} → a a b a c a a', () => {
    const b = createBalancer('round_robin', new SeededRng(1));
    const seq = Array.from(
      { length: 7 },
      () => b.pick(weighted({ a: 5, b: 1, c: 1 }), { nowMs: 0 })?.id,
    ).join(' ');
    assert.equal(seq, 'a a b a c a a');
  });

  it('gives each endpoint its exact weight share over 10,000 picks', () => {
    const counts = countPicks(
      createBalancer('round_robin', new SeededRng(1)),
      weighted({ a: 1, b: 2, c: 7 }),
      10_000,
    );
    assert.deepEqual(counts, { a: 1000, b: 2000, c: 7000 });
  });

  it('stays fair when the list is reordered, shrinks and grows (state keyed by id)', () => {
    const b = createBalancer('round_robin', new SeededRng(1));
    countPicks(b, eps('a', 'b', 'c'), 1001);
    // Carried-over current weights may shift one pick; never more.
    const two = countPicks(b, eps('c', 'a'), 1000);
    assert.ok(Math.abs((two.a ?? 0) - 500) <= 1 && (two.a ?? 0) + (two.c ?? 0) === 1000, JSON.stringify(two));
    const after = countPicks(b, eps('d', 'c', 'a', 'b'), 1000);
    for (const id of ['a', 'b', 'c', 'd'])
      assert.ok(Math.abs((after[id] ?? 0) - 250) <= 1, JSON.stringify(after));
  });
});

describe('random', () => {
  it('draws in proportion to weight over 10,000 picks (±4σ)', () => {
    const counts = countPicks(
      createBalancer('random', new SeededRng(2)),
      weighted({ a: 1, b: 2, c: 3 }),
      10_000,
    );
    for (const [id, share] of [
      ['a', 1 / 6],
      ['b', 2 / 6],
      ['c', 3 / 6],
    ] as const) {
      const sigma = Math.sqrt(10_000 * share * (1 - share));
      assert.ok(Math.abs((counts[id] ?? 0) - 10_000 * share) < 4 * sigma, JSON.stringify(counts));
    }
  });
});

describe('least_request', () => {
  it('prefers the idle endpoint and never picks the busiest of three', () => {
    const b = createBalancer('least_request', new SeededRng(3));
    for (let i = 0; i < 5; i++) b.onStart('a', 0);
    b.onStart('b', 0);
    assert.deepEqual(countPicks(b, eps('a', 'b'), 100), { b: 100 });
    const three = countPicks(b, eps('a', 'b', 'c'), 300);
    assert.equal(three.a, undefined);
    assert.ok((three.c ?? 0) > (three.b ?? 0));
    assert.equal(b.outstanding('a'), 5);
    b.onEnd('a', 10, true, 1);
    assert.equal(b.outstanding('a'), 4);
  });

  it('breaks ties at random and compares outstanding/weight', () => {
    const b = createBalancer('least_request', new SeededRng(4));
    const even = countPicks(b, eps('a', 'b'), 1000);
    assert.ok(Math.abs((even.a ?? 0) - 500) < 80, JSON.stringify(even));
    for (let i = 0; i < 2; i++) b.onStart('heavy', 0);
    // heavy: (2 + 1) / 4 = 0.75 < light: (0 + 1) / 1.
    assert.deepEqual(countPicks(b, weighted({ heavy: 4, light: 1 }), 50), { heavy: 50 });
  });
});

/**
 * Open-loop traffic: a request every 5 ms; each ends after latencyOf(id). Requests in flight carry
 * over between `run`s. `run` returns each id's share of the picks in [countFromMs, toMs).
 */
function ewmaSim(b: Balancer, seed: number) {
  const jitter = new SeededRng(seed);
  /** Real latencies are noisy; equal constant ones would make every comparison a tie. */
  const fast = () => 8 + jitter.next() * 4;
  const pending: { endMs: number; id: string; latencyMs: number }[] = [];
  const run = (
    list: LbEndpoint[],
    slowId: string | undefined,
    fromMs: number,
    toMs: number,
    countFromMs = fromMs,
  ) => {
    const counts: Record<string, number> = {};
    for (let t = fromMs; t < toMs; t += 5) {
      pending.sort((x, y) => x.endMs - y.endMs);
      while (pending.length > 0 && (pending[0]?.endMs ?? Infinity) <= t) {
        const done = pending.shift()!;
        b.onEnd(done.id, done.latencyMs, true, done.endMs);
      }
      const id = b.pick(list, { nowMs: t })!.id;
      b.onStart(id, t);
      const latencyMs = id === slowId ? 200 : fast();
      pending.push({ endMs: t + latencyMs, id, latencyMs });
      if (t >= countFromMs) counts[id] = (counts[id] ?? 0) + 1;
    }
    const total = Object.values(counts).reduce((x, y) => x + y, 0);
    return (id: string) => (counts[id] ?? 0) / total;
  };
  return { run };
}

describe('ewma', () => {
  it('shifts traffic away from a slow endpoint and back after it recovers', () => {
    const sim = ewmaSim(createBalancer('ewma', new SeededRng(5)), 5);
    const list = eps('a', 'b', 'c');
    const even = sim.run(list, undefined, 0, 10_000);
    assert.ok(even('a') > 0.28, `a share while all fast: ${even('a')}`);
    const slow = sim.run(list, 'a', 10_000, 40_000, 15_000);
    assert.ok(slow('a') < 0.02, `a share while slow: ${slow('a')}`);
    // The slow estimate ages to the reference within ~decayMs × ln(200 / 10) ≈ 30 s, then a is
    // probed, and its estimate converges to the fast latency with the same time constant.
    const recovered = sim.run(list, undefined, 40_000, 130_000, 100_000);
    assert.ok(recovered('a') > 0.28, `a share after recovery: ${recovered('a')}`);
  });

  it('penalises fast failures instead of preferring them', () => {
    const b = createBalancer('ewma', new SeededRng(6));
    ewmaSim(b, 6).run(eps('a', 'b', 'c'), undefined, 0, 5_000);
    let t = 5_000;
    for (let i = 0; i < 2_000; i++, t += 5) {
      const id = b.pick(eps('a', 'b', 'c'), { nowMs: t })!.id;
      b.onStart(id, t);
      b.onEnd(id, id === 'a' ? 1 : 10, id !== 'a', t + (id === 'a' ? 1 : 10));
    }
    const after = countPicks(b, eps('a', 'b', 'c'), 300, t);
    assert.ok((after.a ?? 0) < 30, JSON.stringify(after));
  });

  it('divides its cost by the weight: under load a heavier instance takes more', () => {
    const sim = ewmaSim(createBalancer('ewma', new SeededRng(8)), 8);
    const list = weighted({ heavy: 3, light: 1 });
    const share = sim.run(list, undefined, 0, 20_000, 5_000);
    // A request every 5 ms lasting ~10: about two in flight, so both are drawn and weights count.
    assert.ok(share('heavy') > 0.6, `heavy share ${share('heavy')}`);
    const even = ewmaSim(createBalancer('ewma', new SeededRng(8)), 8).run(
      eps('heavy', 'light'),
      undefined,
      0,
      20_000,
      5_000,
    );
    assert.ok(even('heavy') < 0.6, `share without weights ${even('heavy')}`);
  });

  it('tries a newcomer at once without flooding it', () => {
    const sim = ewmaSim(createBalancer('ewma', new SeededRng(7)), 7);
    sim.run(eps('a', 'b'), undefined, 0, 5_000);
    const share = sim.run(eps('a', 'b', 'new'), undefined, 5_000, 6_000);
    assert.ok(share('new') > 0.1 && share('new') < 0.6, `newcomer share ${share('new')}`);
  });
});

describe('ring_hash', () => {
  const ten = eps(...Array.from({ length: 10 }, (_, i) => `e${i}`));
  const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);
  const mapKeys = (b: Balancer, list: LbEndpoint[]) =>
    keys.map((k) => b.pick(list, { nowMs: 0, hashKey: k })?.id);

  it('maps a key to the same endpoint every time, whatever the list order or balancer', () => {
    const b1 = createBalancer('ring_hash', new SeededRng(8));
    const b2 = createBalancer('ring_hash', new SeededRng(9));
    assert.deepEqual(mapKeys(b1, ten), mapKeys(b1, [...ten]));
    assert.deepEqual(mapKeys(b1, ten), mapKeys(b2, [...ten].reverse()));
    assert.deepEqual((b1 as RingHashBalancer).ringStats(), { points: 1280, rebuilds: 1 });
  });

  it('removing 1 of 10 endpoints moves only that endpoint’s keys (~10%)', () => {
    const b = createBalancer('ring_hash', new SeededRng(8));
    const before = mapKeys(b, ten);
    const after = mapKeys(
      b,
      ten.filter((e) => e.id !== 'e3'),
    );
    const moved = before.filter((id, i) => id !== after[i]).length;
    assert.ok(moved < 1_500 && moved > 500, `moved ${moved}`);
    assert.ok(
      before.every((id, i) => id === 'e3' || id === after[i]),
      'a key of a kept endpoint moved',
    );
    assert.equal((b as RingHashBalancer).ringStats().rebuilds, 2);
  });

  it('spreads keys in proportion to weight', () => {
    const counts = countPicks(
      createBalancer('ring_hash', new SeededRng(8)),
      weighted({ a: 1, b: 1, c: 2 }),
      10_000,
      0,
      (i) => `k${i}`,
    );
    assert.ok(Math.abs((counts.c ?? 0) - 5_000) < 500, JSON.stringify(counts));
  });

  it('falls back to random without a key, and walks the ring past excluded ids', () => {
    const b = createBalancer('ring_hash', new SeededRng(8));
    const noKey = countPicks(b, ten, 1000);
    assert.equal(Object.keys(noKey).length, 10);
    const first = b.pick(ten, { nowMs: 0, hashKey: 'k' })!.id;
    const second = b.pick(ten, { nowMs: 0, hashKey: 'k' }, new Set([first]))!.id;
    assert.notEqual(second, first);
    assert.equal(b.pick(ten, { nowMs: 0, hashKey: 'k' }, new Set([first]))!.id, second);
  });

  it('bounds the ring and validates its options', () => {
    const big = new RingHashBalancer(new SeededRng(1), { maximumRingSize: 100_000_000 });
    big.pick(
      Array.from({ length: 100 }, (_, i) => ({ id: `w${i}`, weight: 1000 })),
      { nowMs: 0, hashKey: 'x' },
    );
    assert.ok(big.ringStats().points <= 65_536, `${big.ringStats().points}`);
    assert.throws(() =>
      createBalancer('ring_hash', new SeededRng(1), {
        ringHash: { minimumRingSize: 10, maximumRingSize: 5 },
      }),
    );
    assert.throws(() =>
      createBalancer('ring_hash', new SeededRng(1), { ringHash: { minimumRingSize: 1.5 } }),
    );
    assert.throws(() => createBalancer('ewma', new SeededRng(1), { ewma: { decayMs: 0 } }));
  });
});

describe('every policy', () => {
  it('returns undefined only for an empty list and respects exclude', () => {
    for (const policy of LB_POLICIES) {
      const b = createBalancer(policy, new SeededRng(10));
      assert.equal(b.pick([], { nowMs: 0 }), undefined);
      for (let i = 0; i < 50; i++) {
        const ctx = { nowMs: i, hashKey: `k${i}` };
        assert.equal(b.pick(eps('a', 'b', 'c'), ctx, new Set(['a', 'b']))?.id, 'c', policy);
        assert.ok(b.pick(eps('a', 'b'), ctx, new Set(['a', 'b'])) !== undefined, policy);
      }
    }
  });

  it('keeps state bounded while endpoints churn, and forgets idle ones', () => {
    for (const policy of LB_POLICIES) {
      const b = createBalancer(policy, new SeededRng(11));
      for (let round = 0; round < 2_000; round++) {
        const list = eps(...Array.from({ length: 5 }, (_, i) => `r${round}-${i}`));
        const id = b.pick(list, { nowMs: round })!.id;
        b.onStart(id, round);
        b.onEnd(id, 3, true, round);
        assert.ok(b.trackedEndpoints() <= statsEntriesCap(5), `${policy}: ${b.trackedEndpoints()}`);
      }
      b.pick(eps('x', 'y'), { nowMs: 2_000 + STATS_IDLE_MS });
      assert.ok(b.trackedEndpoints() <= 2, `${policy} after idle: ${b.trackedEndpoints()}`);
    }
  });

  it('never exceeds the hard bound, even with requests in flight to vanished endpoints', () => {
    const b = createBalancer('least_request', new SeededRng(12));
    for (let i = 0; i < STATS_ENTRIES_MAX + 5_000; i++) b.onStart(`gone-${i}`, i);
    assert.ok(b.trackedEndpoints() <= STATS_ENTRIES_MAX);
    b.onEnd('gone-0', 5, true, 20_000); // forgotten: ignored, nothing goes negative
    assert.equal(b.outstanding('gone-0'), 0);
    assert.throws(() => b.onEnd('x', Number.NaN, true, 0));
    assert.throws(() => b.pick(eps('a'), { nowMs: Number.NaN }));
  });

  it('treats weights that are not integers in [1, 1000] as 1', () => {
    for (const weight of [0, -1, 2.5, Number.NaN, 1001, Number.POSITIVE_INFINITY, undefined]) {
      assert.equal(effectiveWeight({ id: 'a', weight }), 1, String(weight));
    }
    assert.equal(effectiveWeight({ id: 'a', weight: 1000 }), 1000);
    const bad = weighted({ a: 0, b: -3, c: 2.5, d: Number.NaN, e: 1001, f: 1 });
    const counts = countPicks(createBalancer('round_robin', new SeededRng(13)), bad, 600);
    assert.deepEqual(counts, { a: 100, b: 100, c: 100, d: 100, e: 100, f: 100 });
  });
});
