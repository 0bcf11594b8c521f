// The ordered key set behind KV listing: it agrees with a plain sorted array whatever the sequence
// of inserts and removes, across chunk splits and merges.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SortedKeys } from '../../../src/core/state/sorted-keys.js';

describe('SortedKeys', () => {
  it('matches a sorted-array model (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3000 })), { maxLength: 3000 }),
        fc.constantFrom('', '1', '12', 'k', 'k2'),
        (ops, prefix) => {
          const s = new SortedKeys();
          const model = new Set<string>();
          for (const [add, n] of ops) {
            const key = `k${n}`;
            if (add && !model.has(key)) {
              s.insert(key);
              model.add(key);
            } else if (!add) {
              assert.equal(s.remove(key), model.delete(key));
            }
          }
          s.checkInvariants();
          const sorted = [...model].sort();
          assert.equal(s.size, model.size);
          assert.deepEqual(s.range(''), sorted);
          assert.deepEqual(
            s.range(prefix),
            sorted.filter((k) => k.startsWith(prefix)),
          );
          assert.deepEqual(s.range(prefix, 5), sorted.filter((k) => k.startsWith(prefix)).slice(0, 5));
          const rebuilt = SortedKeys.fromSorted(sorted);
          rebuilt.checkInvariants();
          assert.deepEqual(rebuilt.range(prefix), s.range(prefix));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('refuses duplicates and unsorted input', () => {
    const s = new SortedKeys();
    s.insert('a');
    assert.throws(() => s.insert('a'), /duplicate/);
    assert.throws(() => SortedKeys.fromSorted(['b', 'a']), /not sorted/);
    assert.equal(s.remove('zz'), false);
  });
});
