// The ordered key → index map behind KV listing and blocking-query indices: it agrees with a plain
// sorted-array model whatever the sequence of sets and removes, across chunk splits and merges.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SortedIndex } from '../../../src/core/state/sorted-index.js';

describe('SortedIndex', () => {
  it('matches a model map (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3000 }), fc.nat(1_000_000)), {
          maxLength: 3000,
        }),
        fc.constantFrom('', '1', '12', 'k', 'k2', 'k29'),
        (ops, prefix) => {
          const s = new SortedIndex();
          const model = new Map<string, number>();
          for (const [add, n, index] of ops) {
            const key = `k${n}`;
            if (add) {
              s.set(key, index);
              model.set(key, index);
            } else {
              assert.equal(s.remove(key), model.delete(key));
            }
          }
          s.checkInvariants();
          const sorted = [...model.keys()].sort();
          const under = sorted.filter((k) => k.startsWith(prefix));
          assert.equal(s.size, model.size);
          assert.deepEqual(s.range(''), sorted);
          assert.deepEqual(s.range(prefix), under);
          assert.deepEqual(s.range(prefix, 5), under.slice(0, 5));
          assert.equal(s.maxUnder(prefix), Math.max(0, ...under.map((k) => model.get(k)!)));
          assert.deepEqual(
            s.entries(),
            sorted.map((k) => [k, model.get(k)]),
          );
          const copy = SortedIndex.fromSorted(
            sorted,
            sorted.map((k) => model.get(k)!),
          );
          assert.deepEqual(copy.removeUnder(prefix), under);
          copy.checkInvariants();
          assert.deepEqual(
            copy.range(''),
            sorted.filter((k) => !k.startsWith(prefix)),
          );
          const rebuilt = SortedIndex.fromSorted(
            sorted,
            sorted.map((k) => model.get(k)!),
          );
          rebuilt.checkInvariants();
          assert.deepEqual(rebuilt.range(prefix), under);
          assert.equal(rebuilt.maxUnder(prefix), s.maxUnder(prefix));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('refuses unsorted input', () => {
    assert.throws(() => SortedIndex.fromSorted(['b', 'a'], [1, 2]), /not sorted/);
    assert.equal(new SortedIndex().remove('zz'), false);
    assert.equal(new SortedIndex().maxUnder(''), 0);
  });
});
