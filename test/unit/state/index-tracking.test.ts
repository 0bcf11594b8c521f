// Change tracking for blocking queries. The rule: after a change under X at index i, index(X) ≥ i;
// while nothing under X changes, index(X) stays put (so watchers do not wake for nothing).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { StateMachine } from '../../../src/core/state/state-machine.js';
import { anyCommandArb } from './arbitraries.js';
import { bytes } from './helpers.js';

const set = (key: string) => ({ op: 'kv-set', key, value: bytes(key) });
const del = (key: string) => ({ op: 'kv-delete', key });

describe('kvIndex / kvKeyIndex', () => {
  it('follows writes and deletes under a prefix and ignores the rest', () => {
    const m = new StateMachine();
    assert.equal(m.kvIndex('a/'), 0);
    m.apply(1, set('a/x'));
    m.apply(2, set('b/x'));
    assert.equal(m.kvIndex('a/'), 1);
    assert.equal(m.kvIndex('b/'), 2);
    assert.equal(m.kvIndex(''), 2);
    m.apply(3, set('a/y'));
    assert.equal(m.kvIndex('a/'), 3);
    assert.equal(m.kvIndex('a/x'), 1);
    assert.equal(m.kvKeyIndex('a/x'), 1);
    m.apply(4, del('a/y'));
    assert.equal(m.kvIndex('a/'), 4, 'a delete is a change');
    assert.equal(m.kvKeyIndex('a/y'), 4);
    assert.equal(m.kvIndex('b/'), 2);
    m.apply(5, del('a/missing'));
    m.apply(6, { op: 'kv-delete-tree', prefix: 'zz' });
    m.apply(7, { op: 'kv-set', key: 'a/x', value: bytes(''), cas: 0 });
    assert.equal(m.kvIndex('a/'), 4, 'no-op deletes and failed writes change nothing');
    assert.equal(m.kvIndex(''), 4);
    m.apply(8, { op: 'kv-delete-tree', prefix: 'a/' });
    assert.equal(m.kvIndex('a/'), 8);
    assert.equal(m.kvKeyIndex('a/x'), 8);
    assert.equal(m.kvIndex('b/'), 2);
    m.apply(9, set('a/x'));
    assert.equal(m.kvKeyIndex('a/x'), 9);
    assert.equal(m.kvKeyIndex('a/y'), 4, 'deleted before the delete-tree');
    assert.equal(m.kvKeyIndex('never'), 0);
  });

  it('forgets old deletions past the bound, raising a floor instead of missing them', () => {
    const m = new StateMachine({ kvTombstonesMax: 2 });
    ['a', 'b', 'c', 'd'].forEach((k, i) => {
      m.apply(i + 1, set(k));
    });
    m.apply(5, del('a'));
    m.apply(6, del('b'));
    assert.equal(m.kvIndex('a'), 5);
    m.apply(7, del('c')); // forgets a's tombstone (5)
    assert.equal(m.kvIndex('a'), 5, 'the floor still covers the forgotten deletion');
    assert.equal(m.kvKeyIndex('a'), 5);
    assert.equal(m.kvIndex('d'), 5, 'a spurious raise for d, never a miss');
    assert.equal(m.kvIndex('c'), 7);
    m.checkInvariants();
  });

  it('holds the rule for any sequence of commands (property)', () => {
    fc.assert(
      fc.property(
        fc.array(anyCommandArb, { maxLength: 60 }),
        fc.constantFrom(2, 1000),
        (cmds, tombstonesMax) => {
          const m = new StateMachine({ kvTombstonesMax: tombstonesMax, configTombstonesMax: tombstonesMax });
          const prefixes = ['', 'a', 'a/', 'a/b', 'b', 'é', 'z', 'zz'];
          const entries = ['web', 'api', 'db'];
          let index = 0;
          for (const c of cmds) {
            index += 1;
            const before = prefixes.map((p) => ({
              list: m.kvList(p),
              index: m.kvIndex(p),
              key: m.kvKeyIndex(p),
            }));
            const cBefore = entries.map((n) => ({
              e: m.configGet('service-defaults', n),
              index: m.configIndex('service-defaults', n),
            }));
            const kindBefore = {
              list: m.configList('service-defaults'),
              index: m.configIndex('service-defaults'),
            };
            const allBefore = { list: m.configList(), index: m.configIndex() };
            m.apply(index, c);
            prefixes.forEach((p, i) => {
              const b = before[i]!;
              const changed = JSON.stringify(m.kvList(p)) !== JSON.stringify(b.list);
              const after = m.kvIndex(p);
              assert.ok(after >= b.index, 'kvIndex never goes down');
              if (changed) assert.ok(after >= index, `change under ${p} at ${index}, kvIndex ${after}`);
              // Only a forgotten tombstone may move an unchanged prefix, and only with a tiny bound.
              else if (tombstonesMax > 100) assert.equal(after, b.index, `no change under "${p}"`);
              const keyChanged =
                JSON.stringify(m.kvGet(p)) !== JSON.stringify(b.list.find((e) => e.key === p));
              if (keyChanged) assert.ok(m.kvKeyIndex(p) >= index);
              else if (tombstonesMax > 100) assert.equal(m.kvKeyIndex(p), b.key);
            });
            entries.forEach((n, i) => {
              const b = cBefore[i]!;
              const after = m.configIndex('service-defaults', n);
              if (m.configGet('service-defaults', n) !== b.e) assert.ok(after >= index);
              else if (tombstonesMax > 100) assert.equal(after, b.index);
            });
            const kindChanged =
              JSON.stringify(m.configList('service-defaults')) !== JSON.stringify(kindBefore.list);
            assert.equal(m.configIndex('service-defaults') === index, kindChanged);
            if (!kindChanged) assert.equal(m.configIndex('service-defaults'), kindBefore.index);
            const allChanged = JSON.stringify(m.configList()) !== JSON.stringify(allBefore.list);
            assert.equal(m.configIndex(), allChanged ? index : allBefore.index);
          }
          m.checkInvariants();
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('configIndex', () => {
  it('tracks all entries, one kind, and one entry', () => {
    const m = new StateMachine();
    m.apply(1, { op: 'config-set', kind: 'service-defaults', name: 'web', spec: {} });
    m.apply(2, { op: 'config-set', kind: 'proxy-defaults', name: 'global', spec: {} });
    m.apply(3, { op: 'config-set', kind: 'service-defaults', name: 'api', spec: {} });
    assert.equal(m.configIndex(), 3);
    assert.equal(m.configIndex('proxy-defaults'), 2);
    assert.equal(m.configIndex('service-defaults'), 3);
    assert.equal(m.configIndex('service-defaults', 'web'), 1);
    m.apply(4, { op: 'config-delete', kind: 'service-defaults', name: 'web' });
    assert.equal(m.configIndex('service-defaults', 'web'), 4);
    assert.equal(m.configIndex('service-defaults', 'api'), 3);
    assert.equal(m.configIndex('proxy-defaults'), 2);
    m.apply(5, { op: 'kv-set', key: 'k', value: bytes('') });
    assert.equal(m.configIndex(), 4, 'KV writes do not wake configuration watchers');
    assert.equal(m.configIndex('service-defaults', 'nothing'), 0);
  });
});
