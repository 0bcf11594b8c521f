// Random picks from the member table's per-status lists: sampleExcept() must pick exactly what
// sample() over a filtered copy picks, from the same draws, so replacing the O(N) filter changed
// no seeded run (cluster-sim trace hashes stayed the same).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_MEMBERSHIP_CONFIG } from '../../../src/core/membership/config.js';
import { sampleExcept } from '../../../src/core/membership/sample.js';
import { MemberTable } from '../../../src/core/membership/table.js';
import type { MemberInfo, MemberStatus } from '../../../src/core/membership/types.js';
import { SeededRng, sample } from '../../../src/core/rand.js';

const info = (id: string): MemberInfo => ({ id, name: id, address: `${id}:7946`, zone: '', meta: {} });

describe('sampleExcept', () => {
  it('picks what sample() picks from the filtered list, with the same draws', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 40 }),
        fc.uniqueArray(fc.nat(39), { maxLength: 4 }),
        fc.integer({ min: -1, max: 8 }),
        fc.nat(),
        (n, rawSkip, k, seed) => {
          const list = Array.from({ length: n }, (_, i) => `m${i}`);
          const skip = rawSkip.filter((p) => p < n).sort((a, b) => a - b);
          const filtered = list.filter((_, i) => !skip.includes(i));
          const a = new SeededRng(seed);
          const b = new SeededRng(seed);
          assert.deepEqual(sampleExcept(list, skip, k, a), sample(filtered, k, b));
          assert.equal(a.next(), b.next(), 'both drew the same number of values');
        },
      ),
    );
  });
});

describe('member table status lists', () => {
  it('pick() matches a filtered scan in table order as members change, leave and are reaped', () => {
    const limits = { ...DEFAULT_MEMBERSHIP_CONFIG, failedReapMs: 1_000, leftReapMs: 2_000 };
    const statuses: MemberStatus[] = ['alive', 'suspect', 'failed', 'left'];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(11), fc.constantFrom(...statuses), fc.nat(3_000)), { maxLength: 60 }),
        fc.nat(),
        (steps, seed) => {
          const t = new MemberTable(limits, () => {});
          let now = 0;
          for (const [i, status, dtMs] of steps) {
            now += dtMs;
            const id = `m${i}`;
            const m = t.get(id);
            if (m === undefined) t.add(info(id), status, 0, now);
            else t.update(id, { status }, now);
            t.reap(now, 'm0');
            t.checkInvariants('m0');
            for (const s of statuses) {
              const except = ['m0', `m${(i + 1) % 12}`];
              const scan = [...t.values()].filter((x) => x.status === s && !except.includes(x.id));
              const a = new SeededRng(seed);
              const b = new SeededRng(seed);
              const picked = t.pick(s, 3, except, a).map((x) => x.id);
              assert.deepEqual(
                picked,
                sample(scan, 3, b).map((x) => x.id),
              );
              assert.deepEqual(
                t.withStatus(s).map((x) => x.id),
                [...t.values()].filter((x) => x.status === s).map((x) => x.id),
              );
            }
          }
        },
      ),
    );
  });

  it('shares one frozen full-state list until a member changes', () => {
    const t = new MemberTable(DEFAULT_MEMBERSHIP_CONFIG, () => {});
    t.add(info('a'), 'alive', 0, 0);
    t.add(info('b'), 'alive', 0, 0);
    const s1 = t.states();
    assert.equal(t.states(), s1, 'unchanged table: the same list');
    assert.ok(Object.isFrozen(s1) && Object.isFrozen(s1[0]) && Object.isFrozen(s1[0]?.info.meta));
    t.update('b', { status: 'suspect', incarnation: 1 }, 1);
    const s2 = t.states();
    assert.notEqual(s2, s1);
    assert.equal(s2[0], s1[0], 'an unchanged member keeps its entry');
    assert.deepEqual(s2[1], { info: info('b'), status: 'suspect', inc: 1 });
    assert.deepEqual(
      s1[1],
      { info: info('b'), status: 'alive', inc: 0 },
      'a list already sent stays as sent',
    );
  });
});
