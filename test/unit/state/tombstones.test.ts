// Bounded tombstones: the bulk path of a delete-tree ends where adding one by one would, and the
// floor covers every forgotten deletion.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Tombstones } from '../../../src/core/state/tombstones.js';

const view = (t: Tombstones, prefixes: string[]) => ({
  entries: t.entries(),
  floor: t.floorIndex,
  under: prefixes.map((p) => t.maxUnder(p)),
});

describe('Tombstones', () => {
  it('addSorted reaches the same state as one add per key (property)', () => {
    const keyPool = fc.constantFrom('a', 'a/b', 'a/c', 'b', 'b/x', 'c', 'd', 'e', 'f', 'g');
    fc.assert(
      fc.property(
        fc.nat(6),
        fc.array(
          fc.oneof(
            fc.tuple(fc.constant('one' as const), keyPool),
            fc.tuple(fc.constant('many' as const), fc.uniqueArray(keyPool)),
          ),
          {
            maxLength: 20,
          },
        ),
        (max, steps) => {
          const bulk = new Tombstones(max, true);
          const single = new Tombstones(max, true);
          let index = 0;
          for (const [kind, what] of steps) {
            index++;
            // A key must be live to be deleted: "re-create" the tombstoned ones first.
            for (const t of [bulk, single]) for (const k of kind === 'one' ? [what] : what) t.remove(k);
            const all = kind === 'one' ? [what] : [...what].sort();
            bulk.addSorted(all, index);
            for (const k of all) single.add(k, index);
            bulk.checkInvariants();
            single.checkInvariants();
            assert.deepEqual(view(bulk, ['', 'a', 'b/', 'z']), view(single, ['', 'a', 'b/', 'z']));
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('forgets the oldest past the bound, folding its index into the floor', () => {
    const t = new Tombstones(2, false);
    t.add('a', 1);
    t.add('b', 2);
    t.remove('a');
    t.add('c', 3);
    assert.deepEqual(t.entries(), [
      ['b', 2],
      ['c', 3],
    ]);
    assert.equal(t.floorIndex, 0, 'a was re-created, not forgotten');
    t.add('a', 4);
    assert.equal(t.floorIndex, 2);
    assert.equal(t.get('b'), undefined);
    assert.throws(() => t.add('a', 5), /deleted twice/);
  });

  it('keeps its deletion queue bounded under churn', () => {
    const t = new Tombstones(10, true);
    for (let i = 1; i <= 50_000; i++) {
      const k = `k${i % 20}`;
      t.remove(k);
      t.add(k, i);
    }
    t.checkInvariants();
    assert.equal(t.size, 10);
    assert.ok((t as unknown as { queue: unknown[] }).queue.length < 2000);
  });
});
