// ca-roots: which roots a rotation keeps trusted, and the entry's validation. A rotation must never
// stop trusting a root whose leaves may still be in use: their calls would fail.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  CA_ROOTS_LIMITS,
  type CaRootRecord,
  type CaRootsSpec,
  rootsKeptByRotation,
} from '../../../src/core/state/kinds/ca-roots.js';
import { kindModule } from '../../../src/core/state/kinds/index.js';

const PEM = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
const HOUR_MS = 3_600_000;
/** Leaf lifetime (72 h) plus the margin, as the leader passes it. */
const KEEP_MS = 72 * HOUR_MS + 10 * 60_000;
const T0 = Date.UTC(2026, 10, 1);

const idOf = (n: number): string => n.toString(16).padStart(64, '0');
const root = (n: number, rotatedOutAtMs?: number): CaRootRecord => ({
  id: idOf(n),
  certPem: PEM,
  notAfterMs: T0 + 3650 * 24 * HOUR_MS,
  ...(rotatedOutAtMs === undefined ? {} : { rotatedOutAtMs }),
});

/** The entry after a rotation to root `n` at `nowMs`, or the refusal. */
function rotate(cur: CaRootsSpec, n: number, nowMs: number) {
  const kept = rootsKeptByRotation(cur, nowMs, KEEP_MS);
  if (!kept.ok) return kept;
  const spec: CaRootsSpec = { ...cur, activeRootId: idOf(n), roots: [root(n), ...kept.roots] };
  return { ok: true as const, spec };
}

const first: CaRootsSpec = { trustDomain: 'c0ffee.mesh', activeRootId: idOf(1), roots: [root(1)] };

describe('rootsKeptByRotation', () => {
  it('keeps the replaced root, stamped with the time it was replaced', () => {
    const r = rotate(first, 2, T0);
    assert.ok(r.ok);
    assert.deepEqual(
      r.spec.roots.map((x) => [x.id, x.rotatedOutAtMs]),
      [
        [idOf(2), undefined],
        [idOf(1), T0],
      ],
    );
  });

  it('keeps every root replaced within the leaf lifetime: rotating twice at once breaks nothing', () => {
    const a = rotate(first, 2, T0);
    assert.ok(a.ok);
    const b = rotate(a.spec, 3, T0 + 1_000);
    assert.ok(b.ok);
    assert.deepEqual(
      b.spec.roots.map((x) => x.id),
      [idOf(3), idOf(2), idOf(1)],
    );
  });

  it('drops a replaced root once its leaves have expired', () => {
    const a = rotate(first, 2, T0);
    assert.ok(a.ok);
    const b = rotate(a.spec, 3, T0 + KEEP_MS);
    assert.ok(b.ok);
    assert.deepEqual(
      b.spec.roots.map((x) => x.id),
      [idOf(3), idOf(2)],
    );
  });

  it('refuses a rotation that would have to drop a root still in use, and says when it may run', () => {
    let spec = first;
    for (let n = 2; n <= CA_ROOTS_LIMITS.rootsMax; n++) {
      const r = rotate(spec, n, T0 + n * HOUR_MS);
      assert.ok(r.ok);
      spec = r.spec;
    }
    assert.equal(spec.roots.length, CA_ROOTS_LIMITS.rootsMax);
    const refused = rotate(spec, 99, T0 + 10 * HOUR_MS);
    assert.equal(refused.ok, false);
    assert.ok(!refused.ok);
    // Root 1 was replaced at T0 + 2 h: it may go KEEP_MS later.
    assert.equal(refused.retryAtMs, T0 + 2 * HOUR_MS + KEEP_MS);
    assert.equal(refused.replaced, CA_ROOTS_LIMITS.rootsMax - 1);
    const later = rotate(spec, 99, refused.retryAtMs);
    assert.ok(later.ok);
    assert.equal(later.spec.roots.length, CA_ROOTS_LIMITS.rootsMax);
    assert.equal(
      later.spec.roots.some((x) => x.id === idOf(1)),
      false,
    );
  });

  it('keeps a replaced root an older version left without a time, for one more leaf lifetime', () => {
    // Its leaves may be new: the older version may have rotated a minute before the upgrade.
    const legacy: CaRootsSpec = { ...first, activeRootId: idOf(2), roots: [root(2), root(1)] };
    const r = rotate(legacy, 3, T0);
    assert.ok(r.ok);
    assert.deepEqual(
      r.spec.roots.map((x) => [x.id, x.rotatedOutAtMs]),
      [
        [idOf(3), undefined],
        [idOf(2), T0],
        [idOf(1), T0],
      ],
    );
  });

  it('property: never over the bound, never drops a root replaced within the lifetime, every refusal may run at its retry time', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 100 * HOUR_MS }), { maxLength: 30 }), (gaps) => {
        let spec = first;
        let now = T0;
        let next = 2;
        for (const gap of gaps) {
          now += gap;
          const r = rotate(spec, next, now);
          if (!r.ok) {
            assert.ok(r.retryAtMs > now);
            assert.ok(rotate(spec, next, r.retryAtMs).ok);
            continue;
          }
          assert.ok(r.spec.roots.length <= CA_ROOTS_LIMITS.rootsMax);
          for (const old of spec.roots) {
            const inUse = old.id === spec.activeRootId || (old.rotatedOutAtMs as number) + KEEP_MS > now;
            assert.equal(
              r.spec.roots.some((x) => x.id === old.id),
              inUse,
            );
          }
          assert.deepEqual(kindModule('ca-roots')?.validate(r.spec), []);
          spec = r.spec;
          next++;
        }
      }),
    );
  });
});

describe('ca-roots validation', () => {
  const validate = (spec: unknown) => kindModule('ca-roots')?.validate(spec) ?? [];

  it('accepts a replaced root with its time, and names a bad time', () => {
    const spec: CaRootsSpec = { ...first, activeRootId: idOf(2), roots: [root(2), root(1, T0)] };
    assert.deepEqual(validate(spec), []);
    for (const bad of [-1, 1.5, '2026-11-01', null]) {
      const errors = validate({ ...spec, roots: [root(2), { ...root(1), rotatedOutAtMs: bad }] });
      assert.deepEqual(
        errors.map((e) => e.field),
        ['roots[1].rotatedOutAtMs'],
      );
    }
  });

  it(`refuses more than ${CA_ROOTS_LIMITS.rootsMax} roots`, () => {
    const roots = Array.from({ length: CA_ROOTS_LIMITS.rootsMax + 1 }, (_, i) => root(i + 1, T0));
    const errors = validate({ ...first, roots });
    assert.deepEqual(
      errors.map((e) => e.field),
      ['roots'],
    );
  });
});
